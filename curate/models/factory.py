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
    if weights is None:
        _zero_init_last(model)
    if weights is None or getattr(model, "pretrained_cfg", {}).get("num_classes") != num_classes:
        _calm_classifier(model)
    return adapt_stem(model, stem_stride) if stem_stride else model


def _calm_classifier(model: Any) -> None:
    """Start a freshly drawn classifier of the EfficientNet family (MobileNetV2, EfficientNet: the ``conv_stem`` builders)
    with small weights (normal, std 0.01; bias 0), as ResNets start.

    Why: their builder draws the classifier from U(+-1 / sqrt(num_classes)), a range made for 1,000 classes; with 8
    emotions it is 10x wider, and a MobileNetV2's first logits have a standard deviation of 8-11 (a ResNet-50's: 0.04).
    Such a network starts out certain of random answers: measured on FER2013 (issue 39), its training loss stayed
    above guessing's for the first 13,000 images. A classifier loaded from a weights file is left alone."""
    import torch.nn as nn

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if getattr(model, "conv_stem", None) is None or not isinstance(head, nn.Linear):
        return
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)


def _zero_init_last(model: Any) -> None:
    """Zero the last batch-norm scale of every residual inverted-bottleneck block of a from-scratch EfficientNet-family
    network, so each block starts as the identity and the network as a shallow one (Goyal et al. 2017; timm does the
    same for ResNets, ``zero_init_last``, but not for these builders).

    Measured on FER2013 (issue 39, mobilenetv2_050, 38,000 training images): 29.4 % validation accuracy against 24.3 %
    without it; a deep, narrow MobileNetV2 otherwise sits near chance for its first epochs on 48 px faces."""
    import torch.nn as nn

    if getattr(model, "conv_stem", None) is None:
        return
    for block in model.modules():
        last_norm = getattr(block, "bn3", None)
        if getattr(block, "has_skip", False) and isinstance(last_norm, nn.BatchNorm2d):
            nn.init.zeros_(last_norm.weight)
