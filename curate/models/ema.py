"""Exponential moving average of a model's weights (and BatchNorm statistics).

Why: short from-scratch schedules end while the weights still jitter from step to step; an
average over the last few hundred steps generalizes better and costs one ``lerp`` per step.
Every epoch the loop validates both the raw and the averaged weights (bench/models.py records
both), so what EMA buys is measured on every run rather than assumed.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """``decay`` per step, warmed up as min(decay, (1 + t) / (10 + t)) so early averages are not
    dominated by the random initialization."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._floats = [t for t in self.model.state_dict().values() if t.dtype.is_floating_point]
        self._others = [t for t in self.model.state_dict().values() if not t.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        current = list(model.state_dict().values())
        floats = [t.detach() for t in current if t.dtype.is_floating_point]
        others = [t for t in current if not t.dtype.is_floating_point]
        # One fused launch for all tensors: a per-tensor loop costs ~320 kernel launches a step on a GPU.
        torch._foreach_lerp_(self._floats, floats, 1 - d)
        for avg, cur in zip(self._others, others):
            avg.copy_(cur)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.model.load_state_dict(state["model"])
