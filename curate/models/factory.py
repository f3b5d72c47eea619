"""One door to models: any timm architecture, from scratch, a local weights file or a hub name."""

from __future__ import annotations

from pathlib import Path

__all__ = ["create_model"]


def create_model(arch: str, num_classes: int, weights: str | None = None, drop_rate: float = 0.0):  # noqa: ANN201
    """``weights``: None (from scratch), a local file (timm ``pretrained_cfg_overlay``) or a hub name.

    A local file's classifier is dropped when its class count differs, as timm does for
    ImageNet weights, so an ImageNet ResNet-50 becomes an 8-emotion teacher.
    """
    import timm

    from curate.exceptions import CurateError

    if weights is None:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    path = Path(weights).expanduser()
    try:
        if path.exists():
            return timm.create_model(arch, pretrained=True, num_classes=num_classes, drop_rate=drop_rate,
                                     pretrained_cfg_overlay={"file": str(path)})
        return timm.create_model(weights, pretrained=True, num_classes=num_classes, drop_rate=drop_rate)
    except (RuntimeError, OSError, ValueError) as exc:
        where = str(path) if path.exists() else f"hub name {weights!r}"
        raise CurateError(f"{where}: cannot load weights for {arch} ({str(exc).splitlines()[0][:160]})") from None
