"""Decode one input file defensively: a face crop for scoring, or a named reason it is unusable.

Every failure mode seen in real FER dumps maps to a short stable reason code, so an
ingest summary can say "3 truncated, 1 decompression_bomb" instead of a traceback.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["Decoded", "DecodeError", "decode_face", "MAX_PIXELS", "MIN_SIDE", "phash"]

#: Larger images are refused as likely decompression bombs (a 12k x 12k photo is still fine).
MAX_PIXELS = 150_000_000
#: A face smaller than this carries no expression worth labeling.
MIN_SIDE = 16
_EXT_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
    ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF",
}


class DecodeError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class Decoded:
    content_hash: str
    width: int
    height: int
    channels: int
    size_bytes: int
    mime_type: str
    face: np.ndarray  # uint8 (size, size) grayscale face crop
    phash: int  # 64-bit perceptual hash of the whole image
    notes: list[str] = field(default_factory=list)
    box_px: tuple[float, float, float, float] | None = None  # clipped face box in pixels


def phash(gray: np.ndarray) -> int:
    """64-bit DCT perceptual hash (pHash): robust to re-encoding, resizing and small brightness changes."""
    small = cv2.resize(gray.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low[1:] > np.median(low[1:])  # drop DC: brightness alone must not matter
    # 63 bits, most significant first, padded with one 0 bit to 64
    return int.from_bytes(np.packbits(np.r_[bits, False]).tobytes(), "big")


def _to_gray(img: Image.Image, notes: list[str]) -> np.ndarray:
    """Any PIL mode -> uint8 grayscale, scaling 16/32-bit data instead of clipping it."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        notes.append(f"high_bit_depth:{mode}")
        return np.zeros(arr.shape, np.uint8) if hi <= lo else ((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        notes.append(f"alpha_flattened:{mode}")
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    elif mode == "CMYK":
        notes.append("cmyk_converted")
    return np.asarray(img.convert("L"), dtype=np.uint8)


MAX_FILE_BYTES = int(os.environ.get("CURATE_MAX_IMAGE_BYTES", 64 * 1024 * 1024))  # no face photo comes near 64 MiB


def decode_face(path: Path, box: tuple[float, float, float, float] | None = None, box_units: str = "px", size: int = 48) -> Decoded:
    """Read, validate and decode ``path``; crop the face box when given; resize to ``size``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise DecodeError("missing_file", "no such file") from None
    except OSError as exc:
        raise DecodeError("unreadable", exc.strerror or str(exc)) from None
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except OSError:
            raise DecodeError("broken_symlink", f"points to {os.readlink(path)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError("not_a_file", "not a regular file")
    if st.st_size == 0:
        raise DecodeError("empty_file", "0 bytes")
    if st.st_size > MAX_FILE_BYTES:
        # Checked before reading: a stray archive in an image folder must not be pulled into memory.
        raise DecodeError("too_large", f"{st.st_size} bytes exceeds {MAX_FILE_BYTES} (CURATE_MAX_IMAGE_BYTES)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DecodeError("unreadable", exc.strerror or str(exc)) from None
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise DecodeError("decompression_bomb", f"{img.width}x{img.height} exceeds {MAX_PIXELS} pixels")
            fmt = img.format or "unknown"
            img.load()
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError("decompression_bomb", str(exc).split(".")[0]) from None
    except UnidentifiedImageError:
        raise DecodeError("not_an_image", "content is not a known image format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        message = str(exc)
        reason = "truncated" if "truncated" in message or "broken data stream" in message else "corrupt_image"
        raise DecodeError(reason, message.splitlines()[0][:120]) from None
    expected = _EXT_FORMATS.get(path.suffix.lower())
    if expected != fmt:
        notes.append(f"extension_mismatch:{path.suffix or 'none'}={fmt}")
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (1, None):  # phones store rotation in EXIF; people see the rotated face
        notes.append(f"exif_rotated:{orientation}")
        img = ImageOps.exif_transpose(img)
    width, height = img.size
    if min(width, height) < MIN_SIDE:
        raise DecodeError("too_small", f"{width}x{height} is below {MIN_SIDE} px")
    gray = _to_gray(img, notes)
    channels = len(img.getbands())

    box_px = None
    crop = gray
    if box is not None:
        x, y, w, h = box
        if box_units == "yolo":
            x, y, w, h = (x - w / 2) * width, (y - h / 2) * height, w * width, h * height
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(width), x + w), min(float(height), y + h)
        if w <= 0 or h <= 0 or x1 - x0 < MIN_SIDE / 2 or y1 - y0 < MIN_SIDE / 2:
            raise DecodeError("bad_face_box", f"box {tuple(round(v, 1) for v in box)} does not lie on the {width}x{height} image")
        box_px = (x0, y0, x1 - x0, y1 - y0)
        crop = gray[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
    face = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if min(crop.shape) >= size else cv2.INTER_LINEAR)
    return Decoded(
        content_hash=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        channels=channels,
        size_bytes=len(data),
        mime_type=Image.MIME.get(fmt, "application/octet-stream"),
        face=face,
        phash=phash(gray),
        notes=notes,
        box_px=box_px,
    )
