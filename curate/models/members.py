"""Training the teacher's fold models: one after another, or several at once in their own processes on a CPU.

Why at once: on a CPU, small convolutions use cores poorly from one process. Measured on the 2-core machine with the
CPU teacher (fer_cnn_v2, batch 128, 40 px): one process with 2 threads trains 388 images/s; two processes with one
thread each train 252 + 233 = 485 images/s together, 1.25x. K fold models are independent until their mean is taken,
so they are the natural unit to run side by side. Each process runs the same checkpointed loop (curate/models/fit.py)
into the member's own folder, so a killed run resumes exactly as a sequential one does; only this process prints,
from the epoch records the member processes send it.

Where it does not pay, members train one after another: on a GPU (one device, already saturated by one model), with
data-parallel ``nproc`` > 1 (its own processes), on one core, and for members too small for a process start-up of a
few seconds to be repaid (fewer than ``MIN_FACES_AT_ONCE`` faces each).
"""

from __future__ import annotations

import dataclasses
import os
import queue as queue_module
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from curate.exceptions import CurateError
from curate.models.config import RetrainConfig
from curate.models.manifest import Row
from curate.taxonomy import EMOTIONS

__all__ = ["MemberJob", "MIN_FACES_AT_ONCE", "members_at_once", "train_members"]

MIN_FACES_AT_ONCE = 2000  # below this a member trains in seconds: a process start-up (~4 s of imports) would not pay


@dataclass(frozen=True)
class MemberJob:
    """One fold model to train (or finish): its index, rows, folder and resume state (None: from the start)."""

    member: int
    rows: Sequence[Row]
    folder: Path
    state: Path | None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def members_at_once(requested: int, jobs: Sequence[MemberJob], cfg: RetrainConfig) -> int:
    """How many members train at the same time: ``requested`` when given (>= 1), else the automatic choice above."""
    if requested >= 1:
        return max(1, min(requested, len(jobs)))
    from curate.models.infer import resolve_device

    if len(jobs) < 2 or cfg.nproc > 1 or resolve_device(cfg.device).type != "cpu":
        return 1
    if min(len(j.rows) for j in jobs) < MIN_FACES_AT_ONCE:
        return 1
    return max(1, min(len(jobs), usable_cores()))


def train_members(jobs: Sequence[MemberJob], val: Sequence[Row], cfg: RetrainConfig, at_once: int,
                  on_epoch: Callable[[int, dict[str, Any]], None], progress: Callable[[int], None] | None = None) -> None:
    """Train every job to its last epoch and mark it done (``done.json``); ``on_epoch(member, record)`` runs here
    for each finished epoch, in the order they finish."""
    if at_once <= 1:
        for job in jobs:
            _train_one(job, val, cfg, lambda record, member=job.member: on_epoch(member, record), progress)
        return
    _train_side_by_side(jobs, val, cfg, at_once, on_epoch, progress)


def _train_one(job: MemberJob, val: Sequence[Row], cfg: RetrainConfig, on_epoch: Callable[[dict[str, Any]], None],
               progress: Callable[[int], None] | None) -> None:
    from curate.models.fit import fit

    # Epochs validated without the mirror image: they are only ranked here (RetrainConfig.val_tta).
    fit(job.rows, val, EMOTIONS, dataclasses.replace(cfg, val_tta=False), job.folder, {"kind": "teacher-member", "member": job.member},
        None, job.state, lambda record, _ckpt: on_epoch(record), progress)
    (job.folder / "done.json").write_text("{}\n")


def _epoch_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What the parent prints of an epoch record (the whole record, confusion matrix included, stays in the checkpoint)."""
    return {"epoch": record["epoch"], "train_loss": record["train_loss"],
            "val": {k: record["val"][k] for k in ("accuracy", "macro_f1")}}


def _member_process(job: MemberJob, val: Sequence[Row], cfg: RetrainConfig, threads: int, messages: Any) -> None:
    """A member process: train the job with ``threads`` torch threads, reporting epochs, images and the end to ``messages``."""
    import torch

    torch.set_num_threads(threads)
    try:
        _train_one(job, val, cfg, lambda record: messages.put(("epoch", job.member, _epoch_summary(record))),
                   lambda n: messages.put(("images", job.member, n)))
        messages.put(("done", job.member, None))
    except BaseException as exc:  # noqa: BLE001 - reported as one line by the parent, which stops the others
        text = str(exc).strip().splitlines()
        messages.put(("error", job.member, f"{type(exc).__name__}: {text[0] if text else ''}"[:300]))
        raise SystemExit(1) from None


def _train_side_by_side(jobs: Sequence[MemberJob], val: Sequence[Row], cfg: RetrainConfig, at_once: int,
                        on_epoch: Callable[[int, dict[str, Any]], None], progress: Callable[[int], None] | None) -> None:
    """Up to ``at_once`` member processes at a time (spawned: this process may hold FiftyOne's client threads), the
    cores shared evenly; a member that fails stops the others (each resumes later from its last saved epoch)."""
    import multiprocessing

    from curate.secrets import hidden_from_environ

    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    threads = max(1, usable_cores() // at_once)
    child_cfg = dataclasses.replace(cfg, workers=0)  # the member processes are the parallelism; daemons cannot fork loaders
    pending, running = list(jobs), {}
    try:
        while pending or running:
            while pending and len(running) < at_once:
                job = pending.pop(0)
                process = ctx.Process(target=_member_process, args=(job, list(val), child_cfg, threads, messages), daemon=True,
                                      name=f"curate-fold-{job.member}")
                with hidden_from_environ():  # training needs no secret; the process keeps the environment it starts with
                    process.start()
                running[job.member] = process
            try:
                kind, member, payload = messages.get(timeout=2.0)
            except queue_module.Empty:
                _check_alive(running)
                continue
            if kind == "epoch":
                on_epoch(member, payload)
            elif kind == "images":
                if progress:
                    progress(payload)
            elif kind == "done":
                running.pop(member).join()
            else:
                raise CurateError(f"fold model {member + 1}: training failed: {payload}")
    finally:
        for process in running.values():
            if process.is_alive():
                process.terminate()
            process.join(timeout=10)


def _check_alive(running: dict[int, Any]) -> None:
    """A member process that died without a word (killed for memory, say) fails the run in one line."""
    for member, process in running.items():
        if not process.is_alive() and process.exitcode not in (0, None):
            raise CurateError(f"fold model {member + 1}: its training process exited with code {process.exitcode}")
