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
