"""Class balancing over sample indices (imbalanced-learn), redrawn every epoch.

Resampling indices instead of images means nothing is copied: an epoch is just a
different list of row indices. ``class-weights`` keeps the data and reweights the loss.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from curate.models.config import BALANCE_MODES

__all__ = ["BALANCE_MODES", "epoch_indices", "class_weights", "class_counts"]


def epoch_indices(labels: np.ndarray, mode: str, seed: int, epoch: int) -> np.ndarray:
    """Row indices to train on this epoch (a fresh draw per epoch, reproducible from seed + epoch)."""
    n = len(labels)
    if mode in ("none", "class-weights") or n == 0 or len(np.unique(labels)) < 2:
        return np.arange(n)
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    if mode == "oversample":
        sampler = RandomOverSampler(random_state=seed * 1000 + epoch)
    elif mode == "undersample":
        sampler = RandomUnderSampler(random_state=seed * 1000 + epoch)
    else:
        raise ValueError(f"balance mode {mode!r} must be one of {', '.join(BALANCE_MODES)}")
    resampled, _ = sampler.fit_resample(np.arange(n).reshape(-1, 1), labels)
    return resampled[:, 0]


def class_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    """scikit-learn's "balanced" weights, n / (classes present x count): the average weight per sample is 1.
    Classes absent from ``labels`` get 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.tolist()


def class_counts(labels: Sequence[int], classes: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(classes))
    return {c: int(counts[i]) for i, c in enumerate(classes) if counts[i]}
