"""Faces decoded once and kept in memory, on the device that trains on them.

Why: a training run reads every face once per epoch. Decoding a 48 px JPEG costs about as much as a
third of a training step of the CPU teacher (2.8k decodes/s against ~700 trained images/s on two
cores), and on a GPU the decode is the whole bottleneck. FER faces are small: FER2013's 28,709
training faces take 66 MB as uint8 at 48 px, so the run decodes them once, keeps them as one
uint8 tensor (on the GPU when training there) and draws every batch by indexing it.
Datasets too large for ``MAX_BYTES`` keep streaming through the DataLoader (curate/models/data.py).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from curate.models.manifest import Row
from curate.models.preprocess import load_face

__all__ = ["FacesInMemory", "MAX_BYTES"]

MAX_BYTES = 2 << 30  # 2 GiB of uint8 faces: ~930k faces at 48 px, ~43k at 224 px


class FacesInMemory:
    """The rows' faces as one uint8 (N, 1, S, S) tensor and their class indices (-1: unlabeled)."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        self.pixels, self.labels = pixels, labels

    @staticmethod
    def fits(count: int, image_size: int) -> bool:
        return count * image_size * image_size <= MAX_BYTES

    @classmethod
    def decode(cls, rows: Sequence[Row], classes: Sequence[str], image_size: int, device: torch.device | str = "cpu") -> FacesInMemory:
        """Decode and resize every face once (the same resize the streaming transforms apply)."""
        from torchvision.transforms import v2

        resize = v2.Resize((image_size, image_size), antialias=True)
        index = {c: i for i, c in enumerate(classes)}
        pixels = torch.empty((len(rows), 1, image_size, image_size), dtype=torch.uint8)
        for i, row in enumerate(rows):
            face = load_face(row.path, row.box)
            pixels[i] = face if face.shape[-2:] == (image_size, image_size) else resize(face)
        labels = torch.tensor([index.get(r.label, -1) if r.label is not None else -1 for r in rows], dtype=torch.long)
        return cls(pixels.to(device), labels.to(device))

    def __len__(self) -> int:
        return len(self.pixels)

    def batches(self, indices: Sequence[int], batch_size: int, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(faces in [0, 1] float, labels, row indices) batches over ``indices`` (repeats allowed), shuffled by
        ``generator`` (None: in order). The same contract as a DataLoader over curate's FaceDataset."""
        order = torch.as_tensor(list(indices), dtype=torch.long)
        if generator is not None:
            order = order[torch.randperm(len(order), generator=generator)]
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            on_device = idx.to(self.pixels.device)
            yield self.pixels[on_device].float().div_(255), self.labels[on_device], idx
