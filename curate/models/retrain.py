"""The checkpointed training loop: class-balanced (optionally distilled) training with per-epoch
checkpoints and exact resume. The retrain stage and the teacher's fold models both run it.

Why resume is exact: every epoch reseeds Python, NumPy, torch and the DataLoader from
(seed, epoch), so an epoch's randomness depends only on its number; the resume state
holds model, weight average, optimizer, scheduler, best-so-far and history, written atomically
after each epoch. A run killed mid-epoch restarts that epoch from the last saved state.
The state holds tensors and plain Python values only, so it loads with ``weights_only=True``:
a tampered ``state.pt`` cannot run code.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from curate.models.balance import class_counts, class_weights, epoch_indices
from curate.models.checkpoint import atomic_write_bytes, save_checkpoint
from curate.models.data import FaceDataset, loader_kwargs
from curate.models.distributed import SINGLE, Group, launch, shard
from curate.models.ema import WeightAverage
from curate.models.factory import model_options
from curate.models.infer import resolve_device
from curate.models.manifest import Row
from curate.models.preprocess import train_transform
from curate.models.config import RetrainConfig
from curate.models.train import _optimizer, evaluate, make_scheduler, run_epoch, seed_everything

__all__ = ["RetrainConfig", "retrain", "distillation_loss", "load_state"]


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


def retrain(
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
    """Train; write ``epoch-NNN.safetensors`` (+ sidecar) per epoch, ``best.*`` for the best macro-F1, ``state.pt``.

    With ``cfg.ema_decay`` the checkpoints hold the weight average (what is validated and kept);
    each epoch's record also carries ``val_raw``, the raw weights' metrics, so the average's gain is on record.
    With ``cfg.nproc > 1`` the loop runs data-parallel in that many processes (curate/models/distributed.py);
    ``on_epoch`` then runs here, in this process, for each epoch they finished, after they all stopped.
    """
    if cfg.nproc > 1 and not group.distributed:
        return _retrain_in_processes(train_rows, val_rows, classes, cfg, out_dir, sidecar_extra, teacher_logits, resume, on_epoch)
    device = resolve_device(cfg.device)
    if group.distributed and device.type == "cuda":
        device = torch.device("cuda", group.rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
    pp = cfg.preprocess()
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[r.label] for r in train_rows])
    weights = class_weights(labels, len(classes)) if cfg.balance == "class-weights" else None
    seed_everything(cfg.seed)
    model = cfg.build_model(len(classes)).to(device).to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, cfg)
    steps_per_epoch = max(1, len(epoch_indices(labels, cfg.balance, cfg.seed, 1)) // group.world // cfg.batch_size)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    # The average spans at most a tenth of the run, so a short run is not dominated by its early weights.
    decay = min(cfg.ema_decay, 1 - 10 / max(20, steps_per_epoch * cfg.epochs)) if cfg.ema_decay else 0.0
    average = WeightAverage(model, decay) if decay > 0 else None
    scheduler = make_scheduler(optimizer, steps_per_epoch * cfg.epochs, int(steps_per_epoch * cfg.warmup_epochs))
    criterion = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, device=device) if weights else None, label_smoothing=cfg.label_smoothing)
    teacher = torch.from_numpy(teacher_logits).float() if teacher_logits is not None else None
    if cfg.distill and (teacher is None or len(teacher) != len(train_rows)):
        raise ValueError("distillation needs teacher logits for every training row, in the rows' order")

    start_epoch, best_f1, best_epoch, history = 1, -1.0, 0, []
    if resume is not None:
        state = load_state(resume, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if average is not None and state.get("average") is not None:
            average.load_state_dict(state["average"])
        start_epoch, best_f1, best_epoch, history = state["epoch"] + 1, state["best_f1"], state["best_epoch"], state["history"]

    def kd_loss(out: torch.Tensor, ce: torch.Tensor, rows_idx: torch.Tensor) -> torch.Tensor:
        kd = distillation_loss(out.float(), teacher[rows_idx].to(device), cfg.kd_temperature)
        return (1 - cfg.kd_weight) * ce + cfg.kd_weight * kd

    extra_loss = kd_loss if cfg.distill else None
    trained = model
    if group.distributed:  # gradients averaged over the ranks; the EMA and the checkpoints use the bare module
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    after_step = (lambda: average.update(model)) if average is not None else None
    dataset = FaceDataset(train_rows, classes, train_transform(pp))
    out_dir.mkdir(parents=True, exist_ok=True)
    options = model_options(cfg.resolved_stem_stride())
    seen, train_time = 0, 0.0
    for epoch in range(start_epoch, cfg.epochs + 1):
        epoch_seed = cfg.seed * 1000 + epoch  # the same on every rank: the draw and its split
        rank_seed = epoch_seed + 100_000 * group.rank  # this rank's augmentations and order (rank 0: a one-process run's)
        seed_everything(rank_seed)
        drawn = epoch_indices(labels, cfg.balance, cfg.seed, epoch)
        mine = shard(drawn, group, epoch_seed)
        generator = torch.Generator().manual_seed(rank_seed)
        loader = DataLoader(Subset(dataset, mine.tolist()), batch_size=cfg.batch_size, shuffle=True, drop_last=len(mine) > cfg.batch_size,
                            generator=generator, **loader_kwargs(cfg.workers, device))
        losses, n, seconds = run_epoch(trained, loader, steps_per_epoch, optimizer, scheduler, criterion, device, pp,
                                       extra_loss=extra_loss, progress=progress, after_step=after_step)
        seen, train_time = seen + n * group.world, train_time + seconds
        if not group.is_main:  # rank 0 validates and writes; the others wait for it at the barrier
            group.barrier()
            continue
        t_eval = time.perf_counter()
        kept = average.model if average is not None else model
        metrics, _ = evaluate(kept, val_rows, classes, pp, cfg)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None, "lr": scheduler.get_last_lr()[0],
                  "drawn": class_counts(labels[drawn], classes), "val": metrics, "train_seconds": round(seconds, 1)}
        if average is not None:
            raw, _ = evaluate(model, val_rows, classes, pp, cfg)
            record["val_raw"] = {k: v for k, v in raw.items() if k != "confusion_matrix"}
        record["eval_seconds"] = round(time.perf_counter() - t_eval, 1)
        history.append(record)
        sidecar = {"arch": cfg.arch, "classes": list(classes), "preprocess": pp.to_dict(), "model_options": options, "temperature": 1.0,
                   "epoch": epoch, "train_config": cfg.to_dict(), "history": history, "metrics": metrics, **sidecar_extra}
        ckpt = out_dir / f"epoch-{epoch:03d}.safetensors"
        save_checkpoint(ckpt, kept, sidecar)
        if metrics["macro_f1"] > best_f1:
            best_f1, best_epoch = metrics["macro_f1"], epoch
            save_checkpoint(out_dir / "best.safetensors", kept, {**sidecar, "best_of": str(ckpt.name)})
        _save_state(out_dir / "state.pt", {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                           "average": average.state_dict() if average is not None else None,
                                           "epoch": epoch, "best_f1": best_f1, "best_epoch": best_epoch, "history": history})
        group.barrier()
        if on_epoch:
            on_epoch(record, ckpt)
    return {
        "history": history, "best_epoch": best_epoch, "best_macro_f1": best_f1, "started_at_epoch": start_epoch,
        "class_counts_before": class_counts(labels, classes), "class_counts_after": class_counts(labels[epoch_indices(labels, cfg.balance, cfg.seed, 1)], classes),
        "train_images_per_s": seen / train_time if train_time else 0.0, "out_dir": str(out_dir),
    }


def _rank_main(train_rows: Sequence[Row], val_rows: Sequence[Row], classes: Sequence[str], cfg: RetrainConfig, out_dir: Path,
               sidecar_extra: dict[str, Any], teacher_logits: np.ndarray | None, resume: Path | None, group: Group) -> None:
    """One training process; rank 0 prints a line per epoch and leaves the result for the parent."""

    def say(record: dict[str, Any], _ckpt: Path) -> None:
        val = record["val"]
        print(f"epoch {record['epoch']}/{cfg.epochs} ({group.world} processes): loss {record['train_loss']:.3f}, "
              f"val accuracy {val['accuracy']:.3f}, macro-F1 {val['macro_f1']:.3f}, {record['train_seconds']} s", file=sys.stderr, flush=True)

    result = retrain(train_rows, val_rows, classes, cfg, out_dir, sidecar_extra, teacher_logits, resume,
                     on_epoch=say if group.is_main else None, group=group)
    if group.is_main:
        atomic_write_bytes(out_dir / "result.json", json.dumps(result, default=_plain).encode())


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _retrain_in_processes(train_rows: Sequence[Row], val_rows: Sequence[Row], classes: Sequence[str], cfg: RetrainConfig, out_dir: Path,
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
