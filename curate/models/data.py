"""A torch Dataset over manifest rows (labels as class indices, -1 for unlabeled)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from curate.models.manifest import Row
from curate.models.preprocess import load_face

__all__ = ["FaceDataset", "loader_kwargs"]


class FaceDataset(Dataset):
    def __init__(self, rows: Sequence[Row], classes: Sequence[str], transform: Callable) -> None:
        self.rows, self.transform = list(rows), transform
        self.index = {c: i for i, c in enumerate(classes)}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        row = self.rows[i]
        label = self.index.get(row.label, -1) if row.label is not None else -1
        return self.transform(load_face(row.path, row.box)), label, i


def loader_kwargs(workers: int, device: torch.device) -> dict:
    """DataLoader settings: worker processes that stay alive, pinned memory on CUDA."""
    kw: dict = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        kw.update(persistent_workers=False, prefetch_factor=4)
    return kw
