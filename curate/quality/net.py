"""FaceQualityNet: a small network, trained and shipped by curate, that scores blur and occlusion.

Why a network of our own: no face-parsing or occlusion model can be downloaded here, and
no-reference blur metrics (scikit-image's ``blur_effect``, Laplacian variance) mix up image
content with blur on 48 px faces (see bench/RESULTS.md). The net sees a face crop resized to
48x48 grayscale and predicts (a) a per-pixel "hidden" mask, whose mean is the occluded fraction,
and (b) the equivalent Gaussian blur sigma at that 48 px scale. It is trained on FER2013's
train split with the degradations of :mod:`curate.quality.degrade` (``python -m
curate.quality.train``) and evaluated on the test split by ``bench/quality.py``.

Score meanings (what the thresholds mean):
- ``blur`` = min(sigma, 5) / 5. 0.3 <=> as blurred as a sharp face under a Gaussian of
  sigma 1.5 px at 48 px face size; 1.0 <=> sigma >= 5, no facial detail left.
- ``occlusion`` = estimated fraction of the face crop that is hidden, in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FACE_SIZE", "SIGMA_MAX", "QualityNet", "OnnxQualityNet", "normalize", "load_default", "for_cpu_inference", "WEIGHTS"]

FACE_SIZE = 48
SIGMA_MAX = 5.0
WEIGHTS = Path(__file__).with_name("weights") / "face_quality_v1.safetensors"


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class QualityNet(nn.Module):
    """One full-resolution conv (fine detail for blur), a 3-level U-Net from 24 px down (mask at 24x24)
    and a pooled multi-scale regression head (blur). ~15 M multiply-adds per face."""

    MASK_SIZE = FACE_SIZE // 2

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        c1, c2, c3, c4 = width, width * 2, width * 4, width * 6
        self.stem = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True))
        self.enc2, self.enc3, self.enc4 = _block(c1, c2), _block(c2, c3), _block(c3, c4)
        self.dec3, self.dec2 = _block(c4 + c3, c3), _block(c3 + c2, c2)
        self.mask_head = nn.Conv2d(c2, 1, 1)
        self.blur_head = nn.Sequential(nn.Linear(2 * c1 + c2 + c3 + c4, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 1, 48, 48) normalized -> (mask logits (N, 1, 24, 24), blur in [0, 1] (N,))."""
        e1 = self.stem(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        e4 = self.enc4(F.max_pool2d(e3, 2))
        d3 = self.dec3(torch.cat([F.interpolate(e4, scale_factor=2.0), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0), e2], 1))
        # Mean and spread of the finest features carry most of the blur signal.
        pooled = torch.cat([e1.mean(dim=(2, 3)), e1.std(dim=(2, 3)), *(t.mean(dim=(2, 3)) for t in (e2, e3, e4))], 1)
        return self.mask_head(d2), torch.sigmoid(self.blur_head(pooled)).squeeze(1)


def normalize(faces: np.ndarray) -> torch.Tensor:
    """uint8 (N, 48, 48) faces -> per-image standardized float tensor (N, 1, 48, 48).

    Per-image standardization makes the scores indifferent to exposure and contrast,
    which differ a lot between datasets.
    """
    x = torch.from_numpy(np.ascontiguousarray(faces)).float().div_(255.0).unsqueeze(1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True)
    return (x - mean) / (std + 0.05)


def load_default(path: Path | None = None) -> QualityNet:
    """The shipped weights, in eval mode."""
    from safetensors.torch import load_file

    net = QualityNet()
    net.load_state_dict(load_file(str(path or WEIGHTS)))
    return net.eval()


class OnnxQualityNet:
    """The same network run by ONNX Runtime: same outputs to ~1e-5, 1.8x faster than eager PyTorch on one CPU core
    (1.0 vs 1.8 ms a face, batch 64-256), which matters because every ingested face is scored once."""

    def __init__(self, net: QualityNet, threads: int = 1) -> None:
        import io
        import warnings

        import onnxruntime as ort

        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice: nothing a user can act on
            warnings.simplefilter("ignore")
            torch.onnx.export(net.eval(), (torch.zeros(2, 1, FACE_SIZE, FACE_SIZE),), buffer, input_names=["x"],
                              output_names=["mask", "blur"], dynamic_axes={"x": {0: "n"}, "mask": {0: "n"}, "blur": {0: "n"}},
                              dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask, blur = self.session.run(None, {"x": x.contiguous().numpy()})
        return torch.from_numpy(mask), torch.from_numpy(blur)


def for_cpu_inference(net: QualityNet, threads: int = 1) -> QualityNet | OnnxQualityNet:
    """The fastest way this machine has to run ``net`` on CPU: ONNX Runtime when it can export and load it (a core
    dependency, so nearly always), eager PyTorch otherwise; both give the same scores."""
    try:
        return OnnxQualityNet(net, threads)
    except Exception:  # noqa: BLE001 - no ONNX Runtime or exporter here: the eager network scores the same faces
        return net
