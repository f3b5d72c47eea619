"""Blur/occlusion scores for batches of face crops, and the threshold rule that removes faces."""

from __future__ import annotations

import numpy as np

__all__ = ["BLANK_CONTRAST_MAX", "contrast", "score_faces", "quality_reasons"]

#: A face whose grey levels vary less than this (standard deviation / 255) is a blank frame, not a face: FER2013 ships
#: a dozen all-black images. Its blur score is high too (nothing is sharp in a constant image), but "blur" would be
#: the wrong reason to give a person reading the report; 0.01 is 2.5 grey levels, far below any real face.
BLANK_CONTRAST_MAX = 0.01


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


def contrast(face: np.ndarray) -> float:
    """The grey-level standard deviation of a uint8 face crop, in [0, 1] (0: a constant image)."""
    return round(float(face.std()) / 255.0, 4)


def quality_reasons(blur: float | None, occlusion: float | None, blur_max: float, occlusion_max: float,
                    face_contrast: float | None = None) -> list[str]:
    """Why a face leaves the working set ([] = it stays). Strictly greater than the threshold removes.
    A blank frame is removed as ``blank`` alone: its blur and occlusion scores describe no face."""
    if face_contrast is not None and face_contrast < BLANK_CONTRAST_MAX:
        return ["blank"]
    reasons = []
    if blur is not None and blur > blur_max:
        reasons.append("blur")
    if occlusion is not None and occlusion > occlusion_max:
        reasons.append("occlusion")
    return reasons

