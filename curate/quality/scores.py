"""Blur/occlusion scores for batches of face crops, and the threshold rule that removes faces."""

from __future__ import annotations

import numpy as np

__all__ = ["score_faces", "quality_reasons"]


def score_faces(net, faces: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """uint8 (N, 48, 48) faces -> (blur, occlusion), each float32 (N,) in [0, 1]. ``net`` is the QualityNet or its
    ONNX Runtime form (:func:`curate.quality.net.for_cpu_inference`)."""
    import torch

    from curate.quality.net import normalize

    blur = np.empty(len(faces), np.float32)
    occlusion = np.empty(len(faces), np.float32)
    with torch.inference_mode():
        for start in range(0, len(faces), batch_size):
            x = normalize(faces[start : start + batch_size])
            if isinstance(net, torch.nn.Module):
                x = x.contiguous(memory_format=torch.channels_last)
            logits, b = net(x)
            blur[start : start + len(x)] = b.numpy()
            occlusion[start : start + len(x)] = torch.sigmoid(logits).mean(dim=(1, 2, 3)).numpy()
    return blur, occlusion


def quality_reasons(blur: float | None, occlusion: float | None, blur_max: float, occlusion_max: float) -> list[str]:
    """Why a face leaves the working set ([] = it stays). Strictly greater than the threshold removes."""
    reasons = []
    if blur is not None and blur > blur_max:
        reasons.append("blur")
    if occlusion is not None and occlusion > occlusion_max:
        reasons.append("occlusion")
    return reasons

