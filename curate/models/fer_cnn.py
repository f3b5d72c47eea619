"""``fer_cnn``: a compact VGG-style network for 48 px grey faces, the CPU teacher of `make run`.

Why a network of our own: timm's CNNs are built for 224 px; at 48 px on a 2-core CPU a ResNet-50
trains at ~31 images/s and a MobileNetV2 with a full-resolution stem at 40-67, so the half hour of
`make run` buys a teacher at chance (25 %). A plain stack of 3x3 convolutions that halves the face
four times (48 -> 3 px) trains at several hundred images/s on the same cores and learns FER2013's
expressions far better per second (issue 28; bench/RESULTS.md "CPU teacher").

It is registered with timm (``timm.create_model("fer_cnn")``), so training, checkpoints, the
teacher's ensemble, embeddings (``forward_features`` / ``forward_head(pre_logits=True)``) and ONNX
export treat it like any other architecture.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models import register_model
from torch import nn

__all__ = ["FerCNN", "fer_cnn", "fer_cnn_v2", "fer_cnn_wide"]


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FerCNN(nn.Module):
    """Per stage ``depth`` 3x3 convs (BN, ReLU; ``depths`` sets each stage's count) and a 2x2 max-pool, from the input
    on; global average pool, dropout and one linear layer. No stem: at 48 px a convolution at full resolution with the
    first stage's width would cost as much as the three later stages together (measured: 200 vs 600+ training images/s)."""

    def __init__(self, num_classes: int = 8, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256), depth: int = 1,
                 drop_rate: float = 0.0, depths: tuple[int, ...] | None = None, **_: Any) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for width, count in zip(widths, depths or (depth,) * len(widths)):
            for _ in range(count):
                layers.append(_conv(cin, width))
                cin = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean((2, 3)))
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, *_: Any) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def fer_cnn(pretrained: bool = False, **kwargs: Any) -> FerCNN:
    """~0.4 M parameters: one conv per stage, widths 32-64-128-256."""
    if pretrained:
        raise ValueError("fer_cnn has no pretrained weights; train it (curate teacher train --arch fer_cnn)")
    kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
    return FerCNN(**kwargs)


@register_model
def fer_cnn_v2(pretrained: bool = False, **kwargs: Any) -> FerCNN:
    """~1.0 M parameters: fer_cnn with a second 3x3 conv in the last stage (256 channels at 5x5 px on 40 px crops).

    The CPU teacher of `make run` since session 13: the underfitting fer_cnn (training loss 1.34 after 16 epochs) gains
    capacity where it is cheapest, at the coarsest resolution: 0.86x its training speed, +2.5 to +3 points of validation
    accuracy at equal epochs (one fold model, 12 epochs: 59.5 % against 56.7 %); a 1.5x wider last stage instead
    (widths 32-64-128-384) gained nothing (bench/RESULTS.md, "CPU teacher")."""
    if pretrained:
        raise ValueError("fer_cnn_v2 has no pretrained weights; train it (curate teacher train --arch fer_cnn_v2)")
    kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
    return FerCNN(depths=(1, 1, 1, 2), **kwargs)


@register_model
def fer_cnn_wide(pretrained: bool = False, **kwargs: Any) -> FerCNN:
    """~1.2 M parameters: two convs per stage."""
    if pretrained:
        raise ValueError("fer_cnn_wide has no pretrained weights; train it (curate teacher train --arch fer_cnn_wide)")
    kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
    return FerCNN(depth=2, **kwargs)
