"""Checkpoints: safetensors weights + a JSON sidecar (classes, preprocessing, settings, metrics).

Writes are atomic (temp file + rename, weights before sidecar), so a crash leaves either
the previous checkpoint or the new one, never half of one. A checkpoint without its
sidecar is treated as absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curate.files import atomic_write_bytes, file_sha256

__all__ = ["save_checkpoint", "load_checkpoint", "read_sidecar", "sidecar_path", "file_sha256", "atomic_write_bytes"]


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_checkpoint(path: Path, model, sidecar: dict[str, Any]) -> str:  # noqa: ANN001
    """Write weights then sidecar atomically; returns the weights' sha256."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state))
    digest = file_sha256(path)
    atomic_write_bytes(sidecar_path(path), (json.dumps({**sidecar, "sha256": digest}, indent=2, default=float) + "\n").encode())
    return digest


def read_sidecar(path: Path) -> dict[str, Any]:
    from curate.exceptions import CurateError

    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        raise CurateError(f"{path}: not a curate checkpoint (needs {path.name} and {side.name})")
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise CurateError(f"{side}: sidecar is not valid JSON ({exc.msg})") from None


def verified_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar of a checkpoint whose weights still match its sha256, without building the model: what a
    driver needs when the model itself is loaded elsewhere (Ray actors), checked before any of them starts."""
    from curate.exceptions import CurateError

    sidecar = read_sidecar(path)
    expected = sidecar.get("sha256")
    if expected and file_sha256(path) != expected:
        raise CurateError(f"{path}: weights do not match the sha256 in {sidecar_path(path).name} (replaced or damaged after it was written)")
    return sidecar


def load_checkpoint(path: Path, device: str = "cpu"):  # noqa: ANN201
    """(model in eval mode, sidecar). The weights must match the sidecar's sha256: a checkpoint
    swapped or half-copied after it was written is refused, not silently used."""
    from safetensors.torch import load_file

    from curate.models.factory import create_model

    sidecar = verified_sidecar(path)
    stem_stride = (sidecar.get("model_options") or {}).get("stem_stride")

    def build():  # noqa: ANN202
        return create_model(sidecar["arch"], len(sidecar["classes"]), stem_stride=stem_stride)

    members = int(sidecar.get("members") or 0)
    if members:
        from curate.models.ensemble import Ensemble

        model = Ensemble([build() for _ in range(members)])
    else:
        model = build()
    model.load_state_dict(load_file(str(path), device=device))
    return model.to(device).eval(), sidecar
