"""Models come from one factory: from scratch, a local weights file (timm overlay), never the network in tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from curate.exceptions import CurateError
from curate.models.factory import create_model


def test_local_weights_file_loads_through_timm_overlay(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    # An "ImageNet-like" checkpoint with 1000 classes: the backbone must load, the head is re-made for 8 emotions.
    source = timm.create_model("resnet18", num_classes=1000)
    weights = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    model = create_model("resnet18", 8, str(weights))
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert model.get_classifier().out_features == 8
    scratch = create_model("resnet18", 8)
    assert not torch.equal(scratch.conv1.weight, source.conv1.weight)


def test_unreachable_hub_name_is_one_line_error() -> None:
    # HF_HUB_OFFLINE=1 (conftest): a hub name fails at once instead of retrying the network.
    with pytest.raises(CurateError) as info:
        create_model("resnet18", 8, "resnet18.a1_in1k")
    assert "resnet18.a1_in1k" in str(info.value) and "\n" not in str(info.value)


def test_a_from_scratch_mobilenet_starts_unsure_with_identity_residual_blocks(tmp_path: Path) -> None:
    """Issue 39: timm draws an EfficientNet-family classifier for 1,000 classes; with 8 emotions a MobileNetV2's first
    logits had a standard deviation of ~10, so it started certain of random answers and sat at chance on FER2013. A
    from-scratch network now starts near uniform, each residual block the identity; weights from a file keep theirs."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    x = torch.randn(16, 3, 40, 40)
    stock = timm.create_model("mobilenetv2_050", num_classes=8).eval()
    model = create_model("mobilenetv2_050", 8, stem_stride=1).eval()
    with torch.no_grad():
        assert stock(x).std() > 3.0, "timm's own start, which this guards against"
        assert model(x).std() < 0.5
    residual = [b for b in model.modules() if getattr(b, "has_skip", False) and hasattr(b, "bn3")]
    assert residual and all(torch.count_nonzero(b.bn3.weight) == 0 for b in residual)
    # An ImageNet-like file: its batch norms load as they are, only the re-made 8-way head starts small.
    source = timm.create_model("mobilenetv2_050", num_classes=1000)
    weights = tmp_path / "mnv2.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    loaded = create_model("mobilenetv2_050", 8, str(weights))
    assert all(torch.equal(a.bn3.weight, b.bn3.weight) for a, b in zip(
        [m for m in loaded.modules() if hasattr(m, "bn3")], [m for m in source.modules() if hasattr(m, "bn3")]))
    assert loaded.get_classifier().weight.std() < 0.02
