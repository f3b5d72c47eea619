"""Degradations of known strength: Gaussian blur and occluders covering a known fraction of a face.

Why this lives in the package: the quality network is trained on these (train split)
and ``bench/quality.py`` measures it on fresh draws over other faces (test split), so
both must draw from one definition. Every function is pure: image in, image + truth out.
Images are 2-D uint8 grayscale faces (the face crop, already resized).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

__all__ = ["OCCLUDER_KINDS", "Occlusion", "gaussian_blur", "occlude", "random_occlusion"]

OCCLUDER_KINDS: tuple[str, ...] = ("solid", "noise", "photo", "skin", "sunglasses", "mask")


@dataclass(frozen=True)
class Occlusion:
    image: np.ndarray  # uint8, occluded
    mask: np.ndarray  # bool, True where the face is hidden
    kind: str

    @property
    def fraction(self) -> float:
        return float(self.mask.mean())


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur with a Gaussian of ``sigma`` pixels (0 = unchanged)."""
    if sigma <= 0:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT)


def _grow_mask(shape: tuple[int, int], target: float, rng: np.random.Generator, seed_mask: Callable[[float], np.ndarray]) -> np.ndarray:
    """Scale a parametric shape until it covers ``target`` of the image (binary search on its size)."""
    lo, hi = 0.0, 2.5
    best = seed_mask(0.0)
    for _ in range(18):
        mid = (lo + hi) / 2
        m = seed_mask(mid)
        if m.mean() < target:
            lo = mid
        else:
            hi, best = mid, m
    return best if best.any() or target <= 0 else seed_mask(hi)


def _shape_mask(kind: str, shape: tuple[int, int], target: float, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    if target <= 0:
        return np.zeros(shape, bool)
    if kind == "sunglasses":
        # A band around the eyes that thickens (and finally spreads) until it covers the target.
        cy = rng.uniform(0.33, 0.45) * h

        def band(s: float) -> np.ndarray:
            m = np.zeros(shape, np.uint8)
            half = max(1, int(round(s * h / 2)))
            y0, y1 = int(max(0, cy - half)), int(min(h, cy + half))
            m[y0:y1, :] = 1
            return m.astype(bool)

        return _grow_mask(shape, target, rng, band)
    if kind == "mask":
        # A medical mask: from the chin upward, covering the lower face first.
        curve = rng.uniform(0.0, 0.12)

        def lower(s: float) -> np.ndarray:
            top = h * (1 - s)
            xs = np.arange(w)
            bow = curve * h * (1 - ((xs - w / 2) / (w / 2)) ** 2)  # higher in the middle (over the nose)
            yy = np.arange(h)[:, None]
            return yy >= (top - bow)[None, :]

        return _grow_mask(shape, target, rng, lower)
    if kind == "skin":
        # A hand-like blob: union of a few ellipses from one side, grown to the target.
        anchor = rng.uniform([0.1 * w, 0.3 * h], [0.9 * w, 1.0 * h])
        parts = [(rng.uniform(-0.3, 0.3, 2), rng.uniform(0.5, 1.0, 2), rng.uniform(0, 180)) for _ in range(rng.integers(2, 5))]

        def blob(s: float) -> np.ndarray:
            m = np.zeros(shape, np.uint8)
            for offset, axes, angle in parts:
                c = (int(anchor[0] + offset[0] * s * w), int(anchor[1] + offset[1] * s * h))
                ax = (max(1, int(axes[0] * s * w)), max(1, int(axes[1] * s * h * 0.7)))
                cv2.ellipse(m, c, ax, angle, 0, 360, 1, -1)
            return m.astype(bool)

        return _grow_mask(shape, target, rng, blob)
    # solid, noise, photo: an axis-aligned rectangle or an ellipse at a random place.
    aspect = rng.uniform(0.5, 2.0)
    center = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h])
    ellipse = rng.random() < 0.4

    def rect(s: float) -> np.ndarray:
        m = np.zeros(shape, np.uint8)
        rw, rh = s * w * np.sqrt(aspect) * 1.5, s * h / np.sqrt(aspect) * 1.5
        if ellipse:
            cv2.ellipse(m, (int(center[0]), int(center[1])), (max(1, int(rw / 1.6)), max(1, int(rh / 1.6))), 0, 0, 360, 1, -1)
        else:
            x0, y0 = int(center[0] - rw / 2), int(center[1] - rh / 2)
            m[max(0, y0) : max(0, y0 + int(rh)), max(0, x0) : max(0, x0 + int(rw))] = 1
        return m.astype(bool)

    return _grow_mask(shape, target, rng, rect)


def _fill(kind: str, image: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> np.ndarray:
    h, w = image.shape
    if kind == "solid":
        return np.full((h, w), rng.integers(0, 256), np.uint8)
    if kind == "noise":
        base = rng.integers(0, 256, (h, w)).astype(np.float32)
        if rng.random() < 0.5:
            base = cv2.GaussianBlur(base, (0, 0), rng.uniform(0.5, 2.0))
        return np.clip(base, 0, 255).astype(np.uint8)
    if kind == "photo":
        donor = donors[int(rng.integers(len(donors)))] if len(donors) else rng.integers(0, 256, (h, w), np.uint8)
        donor = cv2.resize(donor, (w, h), interpolation=cv2.INTER_AREA)
        dy, dx = rng.integers(-h // 3, h // 3 + 1), rng.integers(-w // 3, w // 3 + 1)
        shifted = np.roll(np.roll(donor, dy, axis=0), dx, axis=1)
        return np.fliplr(shifted) if rng.random() < 0.5 else shifted
    if kind == "skin":
        tone = float(np.clip(np.median(image) + rng.normal(0, 25), 40, 230))  # near the face's own brightness
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        shading = (xx - w / 2) * rng.normal(0, 0.8) + (yy - h / 2) * rng.normal(0, 0.8)
        texture = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 1.5)
        return np.clip(tone + shading + texture, 0, 255).astype(np.uint8)
    if kind == "sunglasses":
        return np.clip(rng.normal(rng.uniform(5, 60), 4, (h, w)), 0, 255).astype(np.uint8)
    if kind == "mask":
        tone = rng.choice([rng.uniform(170, 250), rng.uniform(60, 140)])  # white/blue-ish masks
        folds = (np.sin(np.arange(h) / rng.uniform(2.0, 4.0))[:, None] * rng.uniform(3, 12)).repeat(w, axis=1)
        return np.clip(tone + folds + rng.normal(0, 3, (h, w)), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown occluder kind {kind!r}; expected one of {OCCLUDER_KINDS}")


def occlude(image: np.ndarray, kind: str, fraction: float, rng: np.random.Generator, donors: Sequence[np.ndarray] = ()) -> Occlusion:
    """Hide about ``fraction`` of ``image`` with an occluder of ``kind``; the mask is the exact truth."""
    mask = _shape_mask(kind, image.shape, float(np.clip(fraction, 0.0, 1.0)), rng)
    if not mask.any():
        return Occlusion(image.copy(), mask, kind)
    fill = _fill(kind, image, rng, donors)
    out = image.copy()
    out[mask] = fill[mask]
    # Soften the occluder's inner rim a little (real occluders are not pixel-sharp); the face outside stays exact.
    edge = mask.astype(np.uint8) ^ cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    if edge.any() and rng.random() < 0.5:
        soft = cv2.GaussianBlur(out, (3, 3), 0)
        out[edge.astype(bool)] = soft[edge.astype(bool)]
    return Occlusion(out, mask, kind)


def random_occlusion(image: np.ndarray, rng: np.random.Generator, donors: Sequence[np.ndarray] = (), max_fraction: float = 0.75) -> Occlusion:
    """An occluder of a random kind and a random fraction in [0.03, max_fraction]."""
    kind = OCCLUDER_KINDS[int(rng.integers(len(OCCLUDER_KINDS)))]
    return occlude(image, kind, float(rng.uniform(0.03, max_fraction)), rng, donors)
