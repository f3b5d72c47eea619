"""Image preprocessing: the single definition shared by training, inference and export.

FER faces are grayscale (FER2013, CK+) or color (AffectNet, RAF-DB); models see the face
crop as grayscale replicated to 3 channels, so one model serves every source and ImageNet
weights still load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

__all__ = ["Preprocess", "load_face", "eval_transform", "train_transform"]


@dataclass(frozen=True)
class Preprocess:
    image_size: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        return cls(image_size=int(data["image_size"]), mean=tuple(data["mean"]), std=tuple(data["std"]))  # type: ignore[arg-type]


def load_face(path: str | Path, box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """The face crop as an RGB PIL image (gray replicated), EXIF orientation applied."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        gray = im.convert("L")
    if box is not None:
        x, y, w, h = box
        gray = gray.crop((int(x), int(y), int(x + w), int(y + h)))
    return Image.merge("RGB", (gray, gray, gray))


def eval_transform(pp: Preprocess):  # noqa: ANN201
    import torch
    from torchvision.transforms import v2

    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize((pp.image_size, pp.image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(pp.mean, pp.std),
    ])


class _GaussianNoise:
    def __init__(self, sigma: float = 0.03, p: float = 0.5) -> None:
        self.sigma, self.p = sigma, p

    def __call__(self, x):  # noqa: ANN001, ANN204
        import torch

        if torch.rand(()) < self.p:
            x = x + torch.randn_like(x) * self.sigma
        return x


def train_transform(pp: Preprocess):  # noqa: ANN201
    """FER augmentations: flip, rotation +-15 deg, brightness +-20 %, Gaussian noise, random erasing (p 0.2)."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize((pp.image_size, pp.image_size), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(15),
        v2.ColorJitter(brightness=0.2),
        v2.ToDtype(torch.float32, scale=True),
        _GaussianNoise(0.03),
        v2.Normalize(pp.mean, pp.std),
        v2.RandomErasing(p=0.2, scale=(0.02, 0.2)),
    ])
