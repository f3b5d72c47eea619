"""The training recipe shared by the teacher and the retrain stage.

The recipe for 48 px grey faces (issue 11, measured in bench/models.py): the stem keeps full
resolution (``stem_stride``, see factory.py), AdamW with linear warm-up then cosine decay,
label smoothing 0.1, batched FER augmentations, an exponential moving average of the weights
(``ema_decay``) and horizontal-flip test-time augmentation (``tta_flip``); fixed seeds; AMP and
channels_last on CUDA. The best epoch by validation macro-F1 is kept.
"""

from __future__ import annotations

import math
import random
import time
from typing import Callable, Sequence

import numpy as np
import torch

from curate.models.config import TrainConfig
from curate.models.infer import autocast, predict, predict_faces
from curate.models.manifest import Row
from curate.models.memory import FacesInMemory
from curate.models.metrics import classification_metrics
from curate.models.preprocess import Preprocess, augment_batch, to_model_input

__all__ = ["TrainConfig", "run_epoch", "evaluate", "seed_everything", "make_scheduler"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_scheduler(optimizer, total_steps: int, warmup_steps: int):  # noqa: ANN001, ANN201
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimizer(model, cfg: TrainConfig):  # noqa: ANN001, ANN202
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def evaluate(model, rows: Sequence[Row], classes: Sequence[str], pp: Preprocess, cfg: TrainConfig,  # noqa: ANN001
             faces: FacesInMemory | None = None) -> tuple[dict, np.ndarray]:
    """Metrics and logits of ``model`` on ``rows`` (read from ``faces`` when the run holds them decoded)."""
    if faces is not None:
        logits = predict_faces(model, faces, pp, max(cfg.batch_size, 256))
    else:
        logits, _ = predict(model, rows, classes, pp, cfg.batch_size, cfg.device, cfg.workers)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r.label] for r in rows])
    return classification_metrics(y, logits.argmax(1), classes), logits


def run_epoch(model, loader, steps: int, optimizer, scheduler, criterion, device: torch.device, pp: Preprocess,  # noqa: ANN001
              extra_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
              progress: Callable[[int], None] | None = None,
              after_step: Callable[[], None] | None = None, augment: str = "full") -> tuple[list[float], int, float]:
    """One pass of at most ``steps`` batches: batched augmentation (random ``pp.crop`` px windows when set), AMP on
    CUDA, one optimizer and scheduler step per batch (``augment``: curate.models.preprocess.AUGMENT_LEVELS). ``extra_loss(logits, loss, row_indices)`` may rewrite the
    loss (distillation); ``after_step()`` runs after each optimizer step (the weight average).
    Returns (losses, images seen, seconds)."""
    model.train()
    t0, losses, seen = time.perf_counter(), [], 0
    for step, (x, y, rows_idx) in enumerate(loader):
        if step >= steps:
            break
        x = to_model_input(augment_batch(x.to(device, non_blocking=True), pp, augment)).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast(device):
            out = model(x)
            loss = criterion(out, y)
            if extra_loss is not None:
                loss = extra_loss(out, loss, rows_idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if after_step:
            after_step()
        losses.append(loss.detach())  # no .item() here: a host sync per step stalls a GPU
        seen += len(x)
        if progress:
            progress(len(x))
    values = torch.stack(losses).float().cpu().tolist() if losses else []
    return values, seen, time.perf_counter() - t0
