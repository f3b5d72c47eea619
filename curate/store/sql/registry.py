"""The model registry in SQL: one model_runs row per retrain, one checkpoints row per saved epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from curate.store.sql import ledger, session
from curate.store.sql.models import Checkpoint, ModelRun, utcnow

__all__ = ["start_run", "register_checkpoint", "mark_best", "add_metrics", "record_export", "finish_run", "best_checkpoints", "resolve_checkpoint", "verify_registered"]


def start_run(url: str, dataset: str, cfg: Any, out_dir: Path, resumed: bool) -> int:
    """A resumed run continues its model_runs row (found by output folder); a new run gets a new one."""
    with session.session_scope(url) as db:
        ds = ledger.find_dataset(db, dataset)
        if resumed:
            for run in db.scalars(select(ModelRun).where(ModelRun.kind == "retrain").order_by(ModelRun.id.desc())):
                if (run.params or {}).get("out_dir") == str(out_dir):
                    run.status = "running"
                    return run.id
        run = ModelRun(kind="retrain", architecture=cfg.arch, dataset_id=ds.id if ds else None,
                       params={**cfg.to_dict(), "out_dir": str(out_dir)}, status="running")
        db.add(run)
        db.flush()
        return run.id


def register_checkpoint(url: str, run_id: int, dataset: str, path: Path, epoch: int, snapshot: int | None, metrics: dict[str, Any]) -> None:
    from curate.files import file_sha256

    with session.session_scope(url) as db:
        ds = ledger.find_dataset(db, dataset)
        ledger.insert_ignore(db, Checkpoint.__table__, [{
            "model_run_id": run_id, "dataset_id": ds.id if ds else None, "path": str(path.resolve()), "sha256": file_sha256(path),
            "architecture": (db.get(ModelRun, run_id)).architecture, "epoch": epoch, "label_snapshot_id": snapshot,
            "metrics": metrics, "is_best": False, "created_at": utcnow(),
        }], ["path"])


def mark_best(url: str, run_id: int, best: Path) -> None:
    with session.session_scope(url) as db:
        db.execute(update(Checkpoint).where(Checkpoint.model_run_id == run_id).values(is_best=False))
        db.execute(update(Checkpoint).where(Checkpoint.path == str(best.resolve())).values(is_best=True))


def add_metrics(url: str, path: Path, **entries: Any) -> bool:
    """Merge ``entries`` into a registered checkpoint's metrics (its test figures, its export's); False when the ledger
    never registered ``path``. A new dict is assigned: SQLAlchemy does not see changes made inside a JSON value."""
    with session.session_scope(url) as db:
        row = db.scalars(select(Checkpoint).where(Checkpoint.path == str(path.resolve()))).first()
        if row is None:
            return False
        row.metrics = {**(row.metrics or {}), **entries}
        return True


EXPORT_FIGURES = ("accuracy_split", "accuracy_faces", "accuracy_fp32", "accuracy_int8", "accuracy_change", "size_fp32_bytes",
                  "size_int8_bytes", "latency_ms_fp32", "latency_ms_int8", "int8_top1_agreement")


def record_export(url: str, path: Path, summary: dict[str, Any]) -> bool:
    """Keep an export's figures with the checkpoint it exported, for the report's Models table."""
    return add_metrics(url, path, export={k: summary[k] for k in EXPORT_FIGURES if k in summary})


def finish_run(url: str, run_id: int, result: dict[str, Any]) -> None:
    with session.session_scope(url) as db:
        run = db.get(ModelRun, run_id)
        run.status, run.finished_at = "done", utcnow()
        run.counts = {"before": result["class_counts_before"], "after": result["class_counts_after"], "best_epoch": result["best_epoch"]}


def best_checkpoints(url: str, dataset: str) -> list[Path]:
    """The best checkpoint of each finished retrain run of ``dataset`` still on disk, newest run first."""
    with session.session_scope(url) as db:
        ds = ledger.find_dataset(db, dataset)
        paths = db.scalars(select(Checkpoint.path).join(ModelRun, ModelRun.id == Checkpoint.model_run_id)
                           .where(ModelRun.kind == "retrain", ModelRun.status == "done", Checkpoint.is_best.is_(True),
                                  Checkpoint.dataset_id == (ds.id if ds else None))
                           .order_by(ModelRun.id.desc())).all()
    return [Path(p) for p in paths if Path(p).is_file()]


def resolve_checkpoint(value: str | Path, url: str, dataset: str) -> Path | None:
    """A checkpoint path, or ``best`` (the newest retrain's best) / ``previous`` (the one before it).

    Workflows name checkpoints by role because their paths are only known once the run made them;
    ``previous`` is None on a dataset's first retrain (nothing to compare with yet).
    """
    from curate.exceptions import CurateError

    if str(value) not in ("best", "previous"):
        return Path(value)
    found = best_checkpoints(url, dataset)
    index = 0 if str(value) == "best" else 1
    if len(found) > index:
        return found[index]
    if str(value) == "best":
        raise CurateError(f"dataset {dataset!r}: no finished retrain with a best checkpoint; run `curate retrain` first")
    return None


def verify_registered(url: str, path: Path) -> Path:
    """``path`` if the ledger never registered it or its weights are still the ones it registered; a refusal otherwise.

    The sidecar's sha256 catches a damaged or half-copied file; it cannot catch weights swapped together with their
    sidecar. The ledger's row can: it was written when curate made (or imported) the checkpoint."""
    from curate.exceptions import CurateError
    from curate.files import file_sha256

    with session.session_scope(url) as db:
        expected = db.scalars(select(Checkpoint.sha256).where(Checkpoint.path == str(path.resolve()))).first()
    if expected is not None and path.is_file() and file_sha256(path) != expected:
        raise CurateError(f"{path}: weights differ from the sha256 the ledger registered for this file ({expected[:12]}...): replaced "
                          "after it was registered; to use these weights on purpose, register them with `curate teacher import`")
    return path
