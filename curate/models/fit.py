"""The checkpointed training loop: class-balanced (optionally distilled) training with per-epoch
checkpoints and exact resume. The retrain stage (curate/retrain) and the teacher's fold models
(curate/models/teacher.py) both run it, which is why it has a neutral name.

Why resume is exact: every epoch reseeds Python, NumPy, torch and the DataLoader from
(seed, epoch), so an epoch's randomness depends only on its number; the resume state
holds model, weight average, optimizer, scheduler, best-so-far and history, written atomically
after each epoch (or once per ``state_every`` seconds). A run killed restarts after the last saved state.
The state holds tensors and plain Python values only, so it loads with ``weights_only=True``:
a tampered ``state.pt`` cannot run code.
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from curate.files import atomic_write_bytes
from curate.models.balance import class_counts, class_weights, epoch_indices
from curate.models.checkpoint import save_checkpoint
from curate.models.config import RetrainConfig
from curate.models.data import FaceDataset, loader_kwargs
from curate.models.distributed import SINGLE, Group, launch, shard
from curate.models.ema import WeightAverage
from curate.models.factory import model_options
from curate.models.infer import resolve_device
from curate.models.manifest import Row
from curate.models.memory import FacesInMemory
from curate.models.preprocess import train_transform
from curate.models.train import _optimizer, evaluate, make_scheduler, run_epoch, seed_everything

__all__ = ["fit", "distillation_loss", "load_state"]


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton KD: KL(teacher_T || student_T) * T^2 (so gradients keep their scale)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True, reduction="batchmean") * t * t


def _save_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A resume state, refusing anything but tensors and plain values (no pickled code)."""
    from curate.exceptions import CurateError

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError...
        raise CurateError(f"{path}: not a curate resume state ({str(exc).splitlines()[0][:160]})") from None


def fit(
    train_rows: Sequence[Row],
    val_rows: Sequence[Row],
    classes: Sequence[str],
    cfg: RetrainConfig,
    out_dir: Path,
    sidecar_extra: dict[str, Any],
    teacher_logits: np.ndarray | None = None,
    resume: Path | None = None,
    on_epoch: Callable[[dict[str, Any], Path], None] | None = None,
    progress: Callable[[int], None] | None = None,
    group: Group = SINGLE,
) -> dict[str, Any]:
    """Train; write ``epoch-NNN.safetensors`` (+ sidecar) per epoch, ``best.*`` for the best macro-F1, ``state.pt``
    (the write policy, ``cfg.keep_epochs`` and ``cfg.state_every``: :func:`_save_epoch`; each epoch's record says
    ``state_saved``).

    With ``cfg.ema_decay`` the checkpoints hold the weight average (what is validated and kept);
    the last epoch's record also carries ``val_raw``, the raw weights' metrics, so the average's gain is on record.
    Faces are decoded once into memory when they fit (curate/models/memory.py), else streamed by a DataLoader.
    With ``cfg.nproc > 1`` the loop runs data-parallel in that many processes (curate/models/distributed.py);
    ``on_epoch`` then runs here, in this process, for each epoch they finished, after they all stopped.
    """
    if cfg.nproc > 1 and not group.distributed:
        return _fit_in_processes(train_rows, val_rows, classes, cfg, out_dir, sidecar_extra, teacher_logits, resume, on_epoch)
    device = resolve_device(cfg.device)
    if group.distributed and device.type == "cuda":
        device = torch.device("cuda", group.rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[r.label] for r in train_rows])
    teacher = torch.from_numpy(teacher_logits).float() if teacher_logits is not None else None
    if cfg.distill and (teacher is None or len(teacher) != len(train_rows)):
        raise ValueError("distillation needs teacher logits for every training row, in the rows' order")
    run = _Run.build(cfg, labels, len(classes), device, group)
    start_epoch, best_f1, best_epoch, history = (_resume(run, resume, device) if resume is not None else (1, -1.0, 0, []))

    def kd_loss(out: torch.Tensor, ce: torch.Tensor, rows_idx: torch.Tensor) -> torch.Tensor:
        kd = distillation_loss(out.float(), teacher[rows_idx].to(device), cfg.kd_temperature)
        return (1 - cfg.kd_weight) * ce + cfg.kd_weight * kd

    trained = run.model
    if group.distributed:  # gradients averaged over the ranks; the EMA and the checkpoints use the bare module
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(run.model, device_ids=[device.index] if device.type == "cuda" else None)
    after_step = (lambda: run.average.update(run.model)) if run.average is not None else None
    pp = cfg.preprocess()
    in_memory = FacesInMemory.fits(len(train_rows) + len(val_rows), pp.image_size)
    faces = FacesInMemory.decode(train_rows, classes, pp.image_size, device) if in_memory else None
    val_faces = FacesInMemory.decode(val_rows, classes, pp.image_size, device) if in_memory and val_rows else None
    dataset = FaceDataset(train_rows, classes, train_transform(pp))
    out_dir.mkdir(parents=True, exist_ok=True)
    seen, train_time = 0, 0.0
    last_write, best_weights = time.monotonic(), None
    for epoch in range(start_epoch, cfg.epochs + 1):
        epoch_seed = cfg.seed * 1000 + epoch  # the same on every rank: the draw and its split
        rank_seed = epoch_seed + 100_000 * group.rank  # this rank's augmentations and order (rank 0: a one-process run's)
        seed_everything(rank_seed)
        drawn = epoch_indices(labels, cfg.balance, cfg.seed, epoch)
        mine = shard(drawn, group, epoch_seed)
        generator = torch.Generator().manual_seed(rank_seed)
        drop_last = len(mine) > cfg.batch_size
        loader = (faces.batches(mine.tolist(), cfg.batch_size, generator, drop_last) if faces is not None else
                  DataLoader(Subset(dataset, mine.tolist()), batch_size=cfg.batch_size, shuffle=True, drop_last=drop_last,
                             generator=generator, **loader_kwargs(cfg.workers, device)))
        losses, n, seconds = run_epoch(trained, loader, run.steps_per_epoch, run.optimizer, run.scheduler, run.criterion, device, pp,
                                       extra_loss=kd_loss if cfg.distill else None, progress=progress, after_step=after_step,
                                       augment=cfg.augment)
        seen, train_time = seen + n * group.world, train_time + seconds
        if not group.is_main:  # rank 0 validates and writes; the others wait for it at the barrier
            group.barrier()
            continue
        record = _validate(run, val_rows, val_faces, classes, cfg, epoch, losses, labels[drawn], seconds)
        history.append(record)
        if record["val"]["macro_f1"] > best_f1:
            best_f1, best_epoch = record["val"]["macro_f1"], epoch
        write = cfg.state_every <= 0 or epoch == cfg.epochs or time.monotonic() - last_write >= cfg.state_every
        record["state_saved"] = write
        if best_epoch == epoch and not write:  # best.* is written with the next state; until then its weights wait here
            best_weights = _Snapshot(run.kept)
        ckpt = _save_epoch(run, cfg, classes, out_dir, sidecar_extra, history, best_f1, best_epoch, write, best_weights)
        if write:
            last_write, best_weights = time.monotonic(), None
        group.barrier()
        if on_epoch:
            on_epoch(record, ckpt)
    return {
        "history": history, "best_epoch": best_epoch, "best_macro_f1": best_f1, "started_at_epoch": start_epoch,
        "class_counts_before": class_counts(labels, classes), "class_counts_after": class_counts(labels[epoch_indices(labels, cfg.balance, cfg.seed, 1)], classes),
        "train_images_per_s": seen / train_time if train_time else 0.0, "out_dir": str(out_dir),
    }


@dataclass
class _Run:
    """What one training run holds: the model, its weight average, optimizer, schedule and loss."""

    model: torch.nn.Module
    average: WeightAverage | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    criterion: torch.nn.Module
    steps_per_epoch: int

    @classmethod
    def build(cls, cfg: RetrainConfig, labels: np.ndarray, num_classes: int, device: torch.device, group: Group) -> _Run:
        weights = class_weights(labels, num_classes) if cfg.balance == "class-weights" else None
        seed_everything(cfg.seed)
        model = cfg.build_model(num_classes).to(device).to(memory_format=torch.channels_last)
        optimizer = _optimizer(model, cfg)
        steps_per_epoch = max(1, len(epoch_indices(labels, cfg.balance, cfg.seed, 1)) // group.world // cfg.batch_size)
        if cfg.max_steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
        # The average spans at most a tenth of the run, so a short run is not dominated by its early weights.
        decay = min(cfg.ema_decay, 1 - 10 / max(20, steps_per_epoch * cfg.epochs)) if cfg.ema_decay else 0.0
        criterion = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, device=device) if weights else None,
                                              label_smoothing=cfg.label_smoothing)
        return cls(model, WeightAverage(model, decay) if decay > 0 else None, optimizer,
                   make_scheduler(optimizer, steps_per_epoch * cfg.epochs, int(steps_per_epoch * cfg.warmup_epochs)), criterion, steps_per_epoch)

    @property
    def kept(self) -> torch.nn.Module:
        """The weights that are validated and saved: the average when there is one."""
        return self.average.model if self.average is not None else self.model


def _resume(run: _Run, state_file: Path, device: torch.device) -> tuple[int, float, int, list]:
    """Load a resume state into ``run``; returns (first epoch to train, best macro-F1, best epoch, history)."""
    state = load_state(state_file, device)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.average is not None and state.get("average") is not None:
        run.average.load_state_dict(state["average"])
    return state["epoch"] + 1, state["best_f1"], state["best_epoch"], state["history"]


def _validate(run: _Run, val_rows: Sequence[Row], val_faces: FacesInMemory | None, classes: Sequence[str], cfg: RetrainConfig, epoch: int,
              losses: list[float], drawn_labels: np.ndarray, seconds: float) -> dict[str, Any]:
    """The epoch's record: the kept weights' validation metrics (and on the last epoch the raw weights', to show what the
    average gained: once, because on the CPU teacher every evaluation costs a tenth of an epoch)."""
    t_eval = time.perf_counter()
    pp = cfg.preprocess() if cfg.val_tta else replace(cfg.preprocess(), tta_flip=False)
    metrics, _ = evaluate(run.kept, val_rows, classes, pp, cfg, val_faces)
    record = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None, "lr": run.scheduler.get_last_lr()[0],
              "drawn": class_counts(drawn_labels, classes), "val": metrics, "train_seconds": round(seconds, 1)}
    if run.average is not None and epoch == cfg.epochs:
        raw, _ = evaluate(run.model, val_rows, classes, pp, cfg, val_faces)
        record["val_raw"] = {k: v for k, v in raw.items() if k != "confusion_matrix"}
    record["eval_seconds"] = round(time.perf_counter() - t_eval, 1)
    return record


class _Snapshot:
    """A copy of a model's weights (on its device) that ``save_checkpoint`` can write later."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.weights


def _sidecar(cfg: RetrainConfig, classes: Sequence[str], sidecar_extra: dict[str, Any], history: list) -> dict[str, Any]:
    record = history[-1]
    return {"arch": cfg.arch, "classes": list(classes), "preprocess": cfg.preprocess().to_dict(),
            "model_options": model_options(cfg.resolved_stem_stride()), "temperature": 1.0, "epoch": record["epoch"],
            "train_config": cfg.to_dict(), "history": history, "metrics": record["val"], **sidecar_extra}


def _save_epoch(run: _Run, cfg: RetrainConfig, classes: Sequence[str], out_dir: Path, sidecar_extra: dict[str, Any], history: list,
                best_f1: float, best_epoch: int, write_state: bool = True, best_weights: _Snapshot | None = None) -> Path | None:
    """The epoch's files under the write policy (issue 40): ``epoch-NNN.*`` when ``cfg.keep_epochs``; with the resume state
    (``write_state``: every epoch, or every ``cfg.state_every`` seconds and at the end) ``best.*`` when a best epoch is
    pending, ``last.*`` when epochs are not kept, then ``state.pt`` last, so a kill before it replays from the previous
    state. Between writes nothing touches the disk: on a GPU, writing a ResNet-50's weights, optimizer and weight average
    every 3-second epoch halved the images per second (../shared/gpu-runs/2026-12-04-h200). Returns the epoch's own file,
    or ``last.*`` when epochs are not kept (None on an epoch that wrote nothing)."""
    record = history[-1]
    sidecar = _sidecar(cfg, classes, sidecar_extra, history)
    ckpt = out_dir / f"epoch-{record['epoch']:03d}.safetensors"
    if cfg.keep_epochs:
        save_checkpoint(ckpt, run.kept, sidecar)
    if not write_state:
        return ckpt if cfg.keep_epochs else None
    if best_epoch == record["epoch"]:
        save_checkpoint(out_dir / "best.safetensors", run.kept, {**sidecar, "best_of": str(ckpt.name)})
    elif best_weights is not None:
        best_sidecar = _sidecar(cfg, classes, sidecar_extra, history[:best_epoch - history[0]["epoch"] + 1])
        save_checkpoint(out_dir / "best.safetensors", best_weights, {**best_sidecar, "best_of": f"epoch-{best_epoch:03d}.safetensors"})
    if not cfg.keep_epochs:
        ckpt = out_dir / "last.safetensors"
        save_checkpoint(ckpt, run.kept, sidecar)
    _save_state(out_dir / "state.pt", {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                                       "scheduler": run.scheduler.state_dict(),
                                       "average": run.average.state_dict() if run.average is not None else None,
                                       "epoch": record["epoch"], "best_f1": best_f1, "best_epoch": best_epoch, "history": history})
    return ckpt


def _rank_main(train_rows: Sequence[Row], val_rows: Sequence[Row], classes: Sequence[str], cfg: RetrainConfig, out_dir: Path,
               sidecar_extra: dict[str, Any], teacher_logits: np.ndarray | None, resume: Path | None, group: Group) -> None:
    """One training process; rank 0 prints a line per epoch and leaves the result for the parent."""

    def say(record: dict[str, Any], _ckpt: Path) -> None:
        val = record["val"]
        print(f"epoch {record['epoch']}/{cfg.epochs} ({group.world} processes): loss {record['train_loss']:.3f}, "
              f"val accuracy {val['accuracy']:.3f}, macro-F1 {val['macro_f1']:.3f}, {record['train_seconds']} s", file=sys.stderr, flush=True)

    result = fit(train_rows, val_rows, classes, cfg, out_dir, sidecar_extra, teacher_logits, resume,
                 on_epoch=say if group.is_main else None, group=group)
    if group.is_main:
        atomic_write_bytes(out_dir / "result.json", json.dumps(result, default=_plain).encode())


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _fit_in_processes(train_rows: Sequence[Row], val_rows: Sequence[Row], classes: Sequence[str], cfg: RetrainConfig, out_dir: Path,
                          sidecar_extra: dict[str, Any], teacher_logits: np.ndarray | None, resume: Path | None,
                          on_epoch: Callable[[dict[str, Any], Path], None] | None) -> dict[str, Any]:
    """Launch ``cfg.nproc`` ranks, wait, then report each epoch they finished to ``on_epoch`` (registration stays here)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").unlink(missing_ok=True)
    launch(cfg.nproc, resolve_device(cfg.device).type, _rank_main, list(train_rows), list(val_rows), list(classes), cfg, out_dir,
           sidecar_extra, teacher_logits, resume)
    result = json.loads((out_dir / "result.json").read_text())
    if on_epoch:
        for record in result["history"]:
            if record["epoch"] >= result["started_at_epoch"]:
                on_epoch(record, out_dir / f"epoch-{record['epoch']:03d}.safetensors")
    return result
