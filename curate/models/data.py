"""A torch Dataset over manifest rows (labels as class indices, -1 for unlabeled)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from curate.models.manifest import Row
from curate.models.preprocess import load_face

__all__ = ["FaceDataset", "loader_kwargs", "default_workers"]


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


def default_workers(device: str = "auto") -> int:
    """DataLoader workers that help rather than compete.

    On CUDA the CPU only decodes, so use several workers. On CPU every worker takes a core
    from torch's own threads: with few cores, decoding inline is faster (bench/prelabel.py:
    ratio 0.92 with 0 workers vs 0.89 with 1 on 2 cores).
    """
    import os

    cores = os.cpu_count() or 1
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    return min(8, cores) if cuda else (0 if cores <= 4 else cores // 8)
