"""The teacher as K fold models: their mean pre-labels, each one's held-out fold gives out-of-fold probabilities.

Why: cleanlab needs, for every labeled face, probabilities from a model that never trained on it.
Training K extra models for that costs K x a teacher. Instead the teacher *is* the K fold models
(cross-fitting): each trains on K-1 folds, predicts its held-out fold, and their average predicts
everything else (val, test, unlabeled). With K = 2 the whole teacher costs one training's worth of
images (bench/models.py measures the ratio).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["Ensemble"]


class Ensemble(nn.Module):
    """Mean logits of its members; embeddings are the first member's penultimate features (one
    embedding space, the size of one model's, so error clusters and uniqueness stay comparable)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)

    def logits_and_embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from curate.models.infer import logits_and_embeddings

        outs = [logits_and_embeddings(m, x) for m in self.members]
        return torch.stack([o[0] for o in outs]).mean(0), outs[0][1]
