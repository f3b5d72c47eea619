"""One door to models: any timm architecture, from scratch, a local weights file or a hub name.

Small faces need a gentler stem. timm's CNNs are built for 224 px and shrink the input 32x; a
48 px FER face then ends as a 2x2 map, and from scratch such a network learns slowly
(issue 11: MobileNetV2 reached 26 % after two epochs with the stock stem, 31 % with the stem
conv at stride 1). ``stem_stride`` sets how much the stem shrinks the input before the first
stage: 1 keeps full resolution (4x the compute of MobileNetV2's stock 2), and for ResNets, whose
stem shrinks 4x (stride-2 conv + max-pool), 2 drops the max-pool. The value is recorded in every
checkpoint's sidecar (``model_options``) so loading rebuilds the same network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["create_model", "adapt_stem", "default_stem_stride", "model_options"]


def default_stem_stride(arch: str, image_size: int) -> int | None:
    """The stem stride of the recipe for ``arch`` at ``image_size`` (None = timm's own).

    At FER sizes (<= 64 px): stride 1 for MobileNet/EfficientNet-style stems (``conv_stem``).
    ResNets keep their stock stem: without the max-pool a ResNet-50 trains at 13 images/s on this
    2-core CPU instead of 31 (bench notes), too slow to be a default; ``--stem-stride 2`` is there
    for a GPU. At larger inputs the stock stem is right for every arch.
    """
    if image_size > 64 or arch.startswith(("resnet", "resnext", "seresnet", "wide_resnet", "fer_cnn")):  # fer_cnn: no stem to adapt
        return None
    return 1


def adapt_stem(model: Any, stride: int) -> Any:
    """Set the stem's total down-sampling to ``stride`` (1, 2 or 4) in place; returns the model.

    Works on timm's two stem shapes: ``conv_stem`` (stride 2: MobileNet, EfficientNet, ...) and
    ``conv1`` + ``maxpool`` (stride 4: ResNet family). Weights are unchanged (a conv's weights do
    not depend on its stride), so pretrained weights still load.
    """
    import torch.nn as nn

    from curate.exceptions import CurateError

    if stride not in (1, 2, 4):
        raise CurateError(f"stem stride {stride} must be 1, 2 or 4")
    conv = getattr(model, "conv_stem", None)
    if isinstance(conv, nn.Conv2d):
        if stride > 2:
            raise CurateError(f"{type(model).__name__}: its stem shrinks 2x at most; stem stride {stride} is not possible")
        conv.stride = (stride, stride)
        return model
    conv, pool = getattr(model, "conv1", None), getattr(model, "maxpool", None)
    if isinstance(conv, nn.Conv2d) and pool is not None:
        conv_stride, keep_pool = {1: (1, False), 2: (2, False), 4: (2, True)}[stride]
        conv.stride = (conv_stride, conv_stride)
        if not keep_pool:
            model.maxpool = nn.Identity()
        return model
    raise CurateError(f"{type(model).__name__}: no conv_stem or conv1+maxpool stem; use the default stem (no --stem-stride)")


def model_options(stem_stride: int | None) -> dict[str, Any]:
    """What a checkpoint must record to rebuild its network (the sidecar's ``model_options``)."""
    return {"stem_stride": stem_stride} if stem_stride else {}


def create_model(arch: str, num_classes: int, weights: str | None = None, drop_rate: float = 0.0, stem_stride: int | None = None):  # noqa: ANN201
    """``weights``: None (from scratch), a local file (timm ``pretrained_cfg_overlay``) or a hub name.

    A local file's classifier is dropped when its class count differs, as timm does for
    ImageNet weights, so an ImageNet ResNet-50 becomes an 8-emotion teacher.
    """
    import timm

    import curate.models.fer_cnn  # noqa: F401 - registers curate's own architectures with timm
    from curate.exceptions import CurateError

    if weights is None:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    else:
        path = Path(weights).expanduser()
        try:
            if path.exists():
                model = timm.create_model(arch, pretrained=True, num_classes=num_classes, drop_rate=drop_rate,
                                          pretrained_cfg_overlay={"file": str(path)})
            else:
                model = timm.create_model(weights, pretrained=True, num_classes=num_classes, drop_rate=drop_rate)
        except (RuntimeError, OSError, ValueError) as exc:
            where = str(path) if path.exists() else f"hub name {weights!r}"
            raise CurateError(f"{where}: cannot load weights for {arch} ({str(exc).splitlines()[0][:160]})") from None
    return adapt_stem(model, stem_stride) if stem_stride else model
