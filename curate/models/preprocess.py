"""Image preprocessing: the single definition shared by training, inference and export.

FER faces are grayscale (FER2013, CK+) or color (AffectNet, RAF-DB); models see the face
crop as grayscale replicated to 3 channels, so one model serves every source and ImageNet
weights still load. The replication happens last (:func:`to_model_input`, a view, no copy):
decoding, resizing and augmenting one channel costs a third of three.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

__all__ = ["Preprocess", "load_face", "eval_transform", "train_transform", "augment_batch", "AUGMENT_LEVELS", "normalize_batch", "to_model_input",
           "center_window"]


@dataclass(frozen=True)
class Preprocess:
    image_size: int = 48
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    tta_flip: bool = False  # inference averages the logits of the face and its mirror image
    # A model trained on random crop x crop windows sees the centre window at inference. Measured on fer_cnn
    # trained on 40 px windows of 48 px faces: 37 % validation accuracy on the whole face, 53 % on the centre
    # window; a pooled CNN learns where the face parts lie in its window.
    crop: int = 0

    @property
    def input_size(self) -> int:
        """The side of what the model sees: the crop when there is one, else the resized face."""
        return self.crop if 0 < self.crop < self.image_size else self.image_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        return cls(image_size=int(data["image_size"]), mean=tuple(data["mean"]), std=tuple(data["std"]),  # type: ignore[arg-type]
                   tta_flip=bool(data.get("tta_flip", False)), crop=int(data.get("crop", 0)))


def load_face(path: str | Path, box: tuple[float, float, float, float] | None = None):  # noqa: ANN201
    """The face crop as a (1, H, W) uint8 tensor, EXIF orientation applied.

    OpenCV decodes straight to grayscale and applies EXIF orientation (4x faster than PIL on
    48 px JPEGs); PIL covers what OpenCV cannot read (GIF, 16-bit oddities).
    """
    import cv2
    import numpy as np
    import torch

    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        with Image.open(path) as im:
            gray = np.asarray(ImageOps.exif_transpose(im).convert("L"))
    if box is not None:
        x, y, w, h = box
        gray = gray[int(y) : int(y + h), int(x) : int(x + w)]
    return torch.from_numpy(np.ascontiguousarray(gray)).unsqueeze(0)


def to_model_input(x):  # noqa: ANN001, ANN201
    """(N, 1, H, W) -> (N, 3, H, W) as a view: the models take 3 channels."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def eval_transform(pp: Preprocess):  # noqa: ANN201
    import torch
    from torchvision.transforms import v2

    return v2.Compose([
        v2.Resize((pp.image_size, pp.image_size), antialias=True),
        v2.CenterCrop(pp.input_size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(pp.mean[:1], pp.std[:1]),
    ])


def center_window(x, pp: Preprocess):  # noqa: ANN001, ANN201
    """The centre ``pp.input_size`` window of a batch of resized faces (the batch itself when there is no crop)."""
    size = pp.input_size
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top:top + size, left:left + size]


def base_transform(pp: Preprocess):  # noqa: ANN201
    """Per-image work for training: decode result -> resized float tensor in [0, 1]; augmentation is batched."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize((pp.image_size, pp.image_size), antialias=True), v2.ToDtype(torch.float32, scale=True)])


def train_transform(pp: Preprocess):  # noqa: ANN201
    """What the training DataLoader applies per image (augmentation happens per batch in :func:`augment_batch`)."""
    return base_transform(pp)


AUGMENT_LEVELS = ("full", "light")


def augment_batch(x, pp: Preprocess, level: str = "full"):  # noqa: ANN001, ANN201
    """FER augmentations on a batch in [0, 1], each sample drawn independently, then normalized.

    ``full``: horizontal flip (p 0.5), rotation +-15 deg, a random ``pp.crop`` px window (0: the whole face),
    brightness +-20 %, Gaussian noise (sigma 0.03, p 0.5), random erasing (p 0.2, 2-20 % of the area).
    ``light``: the flip and the random window only, for a short schedule: a from-scratch MobileNetV2 given six epochs
    learns far sooner without the rest (issue 39, bench/RESULTS.md "CPU student"), and six epochs do not over-fit.
    Rotation and crop are one warp: the sampling grid has the crop's size, so a 40 px crop of a 48 px face
    costs the model (40/48)^2 = 0.69 of the work per image (the published FER2013 recipes train on random
    crops of 40-44 px; evaluation sees the centre window). Vectorized: on 48 px
    faces the per-image PIL versions cost as much as a MobileNetV2 training step (bench/retrain.py).
    """
    import math

    import torch
    import torch.nn.functional as F

    if level not in AUGMENT_LEVELS:
        raise ValueError(f"augmentation {level!r} must be one of {', '.join(AUGMENT_LEVELS)}")
    n, c, h, w = x.shape
    dev = x.device
    flip = torch.rand(n, device=dev) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    angle = (torch.rand(n, device=dev) * 2 - 1) * math.radians(15 if level == "full" else 0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    oh = ow = pp.input_size
    sy, sx = oh / h, ow / w  # the window's share of the face, in the grid's [-1, 1] coordinates
    if (oh, ow) == (h, w):  # no crop: no draws, so the recipes without one keep their random stream
        ty = tx = torch.zeros(n, device=dev)
    else:
        ty, tx = (torch.rand(n, device=dev) * 2 - 1) * (1 - sy), (torch.rand(n, device=dev) * 2 - 1) * (1 - sx)
    theta = torch.stack([torch.stack([cos * sx, -sin * sy, tx], 1), torch.stack([sin * sx, cos * sy, ty], 1)], 1)
    grid = F.affine_grid(theta, [n, c, oh, ow], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    h, w = oh, ow
    if level == "light":
        return normalize_batch(x, pp)
    x = x * (1 + (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * 0.2)
    noisy = (torch.rand(n, 1, 1, 1, device=dev) < 0.5).float()
    x = (x + noisy * torch.randn_like(x[:, :1]) * 0.03).clamp(0, 1)
    x = normalize_batch(x, pp)
    erase = torch.rand(n, device=dev) < 0.2
    if erase.any():
        area = torch.empty(n, device=dev).uniform_(0.02, 0.2) * h * w
        aspect = torch.exp(torch.empty(n, device=dev).uniform_(math.log(0.3), math.log(3.3)))
        eh = (area * aspect).sqrt().clamp(1, h)
        ew = (area / aspect).sqrt().clamp(1, w)
        y0 = torch.rand(n, device=dev) * (h - eh)
        x0 = torch.rand(n, device=dev) * (w - ew)
        ys = torch.arange(h, device=dev)[None, :, None]
        xs = torch.arange(w, device=dev)[None, None, :]
        box = (ys >= y0[:, None, None]) & (ys < (y0 + eh)[:, None, None]) & (xs >= x0[:, None, None]) & (xs < (x0 + ew)[:, None, None])
        box = box & erase[:, None, None]
        x = torch.where(box[:, None], torch.randn_like(x), x)
    return x


def normalize_batch(x, pp: Preprocess):  # noqa: ANN001, ANN201
    import torch

    channels = x.shape[1]
    mean = torch.tensor(pp.mean[:channels], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(pp.std[:channels], device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std
