"""Runs in the ingest process pool: decode, hash and score one chunk of inputs.

Each worker loads the quality network once (run by ONNX Runtime, see
curate.quality.net.for_cpu_inference) and uses one thread, so N workers keep N cores busy
without oversubscription.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Job", "Outcome", "QualityScorer", "init_worker", "process_chunk"]

_net = None


@dataclass(frozen=True)
class Job:
    index: int
    path: str
    box: tuple[float, float, float, float] | None
    box_units: str


@dataclass
class Outcome:
    index: int
    ok: bool
    reason: str = ""
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def init_worker(weights: str | None = None) -> None:
    global _net
    import torch

    torch.set_num_threads(1)
    from curate.quality.net import for_cpu_inference, load_default

    _net = for_cpu_inference(load_default(Path(weights) if weights else None))


def process_chunk(jobs: list[Job]) -> list[Outcome]:
    from curate.quality.decode import DecodeError, decode_face
    from curate.quality.scores import contrast, score_faces

    outcomes: list[Outcome] = []
    faces: list[np.ndarray] = []
    scored: list[Outcome] = []
    for job in jobs:
        try:
            d = decode_face(Path(job.path), job.box, job.box_units)
        except DecodeError as exc:
            outcomes.append(Outcome(job.index, False, exc.reason, exc.detail))
            continue
        except Exception as exc:  # noqa: BLE001 - a file must never take the whole ingest down
            outcomes.append(Outcome(job.index, False, "decode_failed", f"{type(exc).__name__}: {exc}"[:200]))
            continue
        out = Outcome(job.index, True, info={
            "content_hash": d.content_hash, "width": d.width, "height": d.height, "channels": d.channels,
            "size_bytes": d.size_bytes, "mime_type": d.mime_type, "phash": f"{d.phash:016x}", "notes": d.notes,
            "box_px": d.box_px, "contrast": contrast(d.face),
        })
        faces.append(d.face)
        scored.append(out)
        outcomes.append(out)
    if faces:
        assert _net is not None, "init_worker was not called"
        blur, occlusion = score_faces(_net, np.stack(faces))
        for out, b, o in zip(scored, blur, occlusion):
            out.info["blur"], out.info["occlusion"] = round(float(b), 4), round(float(o), 4)
    return outcomes


class QualityScorer:
    """One ingest worker for curate.parallel.map_chunks (a local process or a Ray actor): loads the quality
    network once, then decodes, hashes and scores chunk after chunk."""

    def __init__(self, weights: str | None = None) -> None:
        init_worker(weights)

    def run(self, jobs: list[Job]) -> list[Outcome]:
        return process_chunk(jobs)
