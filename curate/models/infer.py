"""Batched inference: logits and penultimate-layer embeddings for manifest rows."""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from curate.models.data import FaceDataset, loader_kwargs
from curate.models.manifest import Row
from curate.models.preprocess import Preprocess, center_window, eval_transform, normalize_batch, to_model_input

__all__ = ["resolve_device", "predict", "predict_faces", "autocast", "logits_and_embeddings"]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device):  # noqa: ANN201
    """bf16 autocast on CUDA (fp16 where bf16 is missing); nothing on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def logits_and_embeddings(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """(logits, penultimate features) of a timm model, or of anything with its own ``logits_and_embeddings``
    (the fold-model ensemble a teacher is)."""
    own = getattr(model, "logits_and_embeddings", None)
    if own is not None:
        return own(x)
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    return model.get_classifier()(feats), feats


@torch.inference_mode()
def predict(model, rows: Sequence[Row], classes: Sequence[str], pp: Preprocess, batch_size: int = 64, device: str = "auto",
            workers: int = 0, progress=None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(logits (N, C) float32, embeddings (N, D) float32), in the order of ``rows``.

    With ``pp.tta_flip`` the logits are the mean over the face and its mirror image (faces are
    left-right symmetric in expression); embeddings are those of the unflipped face."""
    dev = resolve_device(device)
    model = model.to(dev).eval().to(memory_format=torch.channels_last)
    loader = DataLoader(FaceDataset(rows, classes, eval_transform(pp)), batch_size=batch_size, shuffle=False, **loader_kwargs(workers, dev))
    logits, embeddings = [], []
    for x, _, _ in loader:
        out, feats = _forward(model, x.to(dev, non_blocking=True), pp, dev)
        logits.append(out.float().cpu())
        embeddings.append(feats.float().cpu())
        if progress:
            progress(len(x))
    if not logits:
        return np.zeros((0, len(classes)), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(logits).numpy(), torch.cat(embeddings).numpy()


@torch.inference_mode()
def predict_faces(model, faces, pp: Preprocess, batch_size: int = 256) -> np.ndarray:  # noqa: ANN001
    """Logits (N, C) for faces already decoded in memory (curate/models/memory.py), in their order:
    what a training run validates with each epoch, without decoding the validation faces again."""
    dev = faces.pixels.device
    model = model.to(dev).eval().to(memory_format=torch.channels_last)
    logits = [_forward(model, normalize_batch(center_window(x, pp), pp), pp, dev)[0].float().cpu() for x, _, _ in faces.batches(range(len(faces)), batch_size)]
    return torch.cat(logits).numpy() if logits else np.zeros((0, 0), np.float32)


def _forward(model, x: torch.Tensor, pp: Preprocess, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """(logits, embeddings) of one normalized (N, 1|3, H, W) batch; with ``pp.tta_flip`` the logits average the mirror image's."""
    x = to_model_input(x).contiguous(memory_format=torch.channels_last)
    with autocast(dev):
        out, feats = logits_and_embeddings(model, x)
        if pp.tta_flip:
            out = (out + logits_and_embeddings(model, x.flip(3))[0]) / 2
    return out, feats
