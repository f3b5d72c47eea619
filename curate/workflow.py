"""Run a workflow YAML stage by stage, recording each in SQL ``workflow_runs`` so a stopped run resumes.

A workflow is the loop as data::

    name: fer2013
    settings: {dataset: fer2013, blur_max: 0.3}
    stages:
      - {stage: ingest, kind: fer2013, root: "${FER2013_ROOT:-../../shared/data/fer2013}"}
      - {stage: quality}

Stages never call each other: each reads what earlier stages stored. A re-run resumes after
the last stage that finished in the previous run of the workflow, as long as those stages are the
same: each stage is keyed by a hash of the workflow's settings and the *expanded* parameters of
every stage up to it, so pointing ``${VAR}`` at another data root re-runs from the first stage it
changes. ``force`` re-runs everything.
Relative paths in stage parameters are relative to the workflow file.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Callable

from curate.exceptions import CurateError
from curate.settings import Settings

__all__ = ["STAGES", "WorkflowError", "load_workflow", "run_workflow"]

StageFn = Callable[[Settings, dict[str, Any], Path, Callable[[int], None] | None], dict[str, Any]]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class WorkflowError(CurateError):
    pass


def _expand(value: Any) -> Any:
    """${VAR} and ${VAR:-default} in strings, so a workflow can be pointed elsewhere from the environment."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _stage_ingest(settings: Settings, params: dict[str, Any], base: Path, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from curate.ingest.stage import IngestOptions, ingest

    try:
        kind, root = params["kind"], Path(params["root"])
    except KeyError as exc:
        raise WorkflowError(f"ingest stage needs '{exc.args[0]}'") from None
    root = root if root.is_absolute() else (base / root).resolve()
    options = IngestOptions(kind=kind, root=root, dataset=params.get("dataset", settings.dataset), split=params.get("split", "all"),
                            limit=params.get("limit"), workers=settings.worker_count, blur_max=settings.blur_max,
                            occlusion_max=settings.occlusion_max)
    return ingest(options, settings.database_url, settings.home, progress=progress)


def _stage_quality(settings: Settings, params: dict[str, Any], base: Path, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from curate.quality.apply import apply_thresholds

    return apply_thresholds(params.get("dataset", settings.dataset), settings.database_url, settings.blur_max, settings.occlusion_max)


def _training_config(cls: type, settings: Settings, params: dict[str, Any]) -> Any:
    """A TrainConfig/RetrainConfig: the machine's settings (batch size, device, seed) unless the stage names its own."""
    import dataclasses

    from curate.models.data import default_workers

    names = {f.name for f in dataclasses.fields(cls)}
    machine = {"batch_size": settings.batch_size, "device": settings.device, "workers": default_workers(settings.device), "seed": settings.seed}
    return cls(**{**machine, **{k: v for k, v in params.items() if k in names}})


def _stage_teacher(settings: Settings, params: dict[str, Any], base: Path, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from curate.models.train import TrainConfig
    from curate.prelabel.teacher import TeacherOptions, train_teacher

    opts = TeacherOptions(dataset=params.get("dataset", settings.dataset), config=_training_config(TrainConfig, settings, params),
                          **{k: params[k] for k in ("folds", "oof") if k in params})
    return train_teacher(opts, settings.database_url, settings.home)


def _stage_prelabel(settings: Settings, params: dict[str, Any], base: Path, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from curate.models.data import default_workers
    from curate.prelabel.stage import prelabel

    checkpoint = Path(params["checkpoint"]) if params.get("checkpoint") else None
    return prelabel(params.get("dataset", settings.dataset), settings.database_url, checkpoint, settings.batch_size, settings.device,
                    default_workers(settings.device), progress)


def _stage_retrain(settings: Settings, params: dict[str, Any], base: Path, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from curate.models.retrain import RetrainConfig
    from curate.retrain.stage import RetrainOptions, run_retrain

    opts = RetrainOptions(dataset=params.get("dataset", settings.dataset), config=_training_config(RetrainConfig, settings, params))
    return run_retrain(opts, settings.database_url, settings.home)


def _stage_review_push(settings: Settings, params: dict[str, Any], base: Path, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from curate.review.push import push

    return push(settings, params.get("dataset", settings.dataset), float(params.get("threshold", settings.review_threshold)),
                int(params["limit"]) if params.get("limit") else None, int(params.get("batch_size", 100)), progress,
                annotators=int(params["annotators"]) if params.get("annotators") else None)


def _stage_review_pull(settings: Settings, params: dict[str, Any], base: Path, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from curate.review.pull import pull

    return pull(settings, params.get("dataset", settings.dataset), full=bool(params.get("full", False)))


STAGES: dict[str, StageFn] = {
    "ingest": _stage_ingest,
    "quality": _stage_quality,
    "teacher": _stage_teacher,
    "prelabel": _stage_prelabel,
    "retrain": _stage_retrain,
    "review_pull": _stage_review_pull,
    "review_push": _stage_review_push,
}


def load_workflow(path: Path) -> dict[str, Any]:
    from curate.settings import read_yaml_mapping

    doc = read_yaml_mapping(path)
    stages = doc.get("stages")
    if not isinstance(stages, list) or not stages:
        raise WorkflowError(f"{path}: a workflow needs a non-empty 'stages' list")
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict) or stage.get("stage") not in STAGES:
            name = stage.get("stage") if isinstance(stage, dict) else stage
            raise WorkflowError(f"{path}: stage {i + 1} ({name!r}) is not one of {', '.join(STAGES)}")
    return doc


def run_workflow(path: Path, settings: Settings, force: bool = False, on_stage: Callable[[str, str], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a workflow; returns {workflow, run_id, stages: {name: {status, summary}}}."""
    from sqlalchemy import select

    from curate.store.sql import session
    from curate.store.sql.models import WorkflowRun, utcnow

    doc = load_workflow(path)
    expanded = [_expand({k: v for k, v in stage.items() if k != "stage"}) for stage in doc["stages"]]
    chain = _chain_keys(_expand(doc.get("settings") or {}), [(st["stage"], p) for st, p in zip(doc["stages"], expanded)])
    digest = chain[-1]
    name = str(doc.get("name") or path.stem)
    session.require_schema(settings.database_url)
    with session.session_scope(settings.database_url) as db:
        previous = db.scalars(select(WorkflowRun).where(WorkflowRun.workflow == name).order_by(WorkflowRun.id.desc())).first()
        finished: dict[str, Any] = {}
        if not force and previous is not None:
            done = previous.stages or {}
            for index, stage in enumerate(doc["stages"]):  # the leading stages that finished with the same key, no further
                key = f"{index + 1}:{stage['stage']}"
                if done.get(key, {}).get("status") != "done" or done[key].get("key") != chain[index]:
                    break
                finished[key] = done[key]
        run = WorkflowRun(workflow=name, path=str(path.resolve()), config_hash=digest, status="running", stages=dict(finished))
        db.add(run)
        db.flush()
        run_id = run.id
    results: dict[str, Any] = dict(finished)
    for index, stage in enumerate(doc["stages"]):
        key = f"{index + 1}:{stage['stage']}"
        if key in finished:
            if on_stage:
                on_stage(key, "skipped (done in an earlier run)")
            continue
        if on_stage:
            on_stage(key, "running")
        params = expanded[index]
        try:
            summary = STAGES[stage["stage"]](settings, params, path.parent.resolve(), progress)
        except CurateError:
            _save(settings.database_url, run_id, results, "failed")
            raise
        results[key] = {"status": "done", "key": chain[index], "summary": summary}
        _save(settings.database_url, run_id, results, "running")
    _save(settings.database_url, run_id, results, "done", finished_at=utcnow())
    return {"workflow": name, "run_id": run_id, "resumed_stages": sorted(finished), "stages": results}


def _chain_keys(settings: dict[str, Any], stages: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """One key per stage: a hash of the settings and of every stage up to and including it (expanded parameters)."""
    import json

    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    keys = []
    for stage, params in stages:
        h.update(json.dumps([stage, params], sort_keys=True, default=str).encode())
        keys.append(h.hexdigest())
    return keys


def _save(url: str, run_id: int, stages: dict[str, Any], status: str, finished_at: Any = None) -> None:
    from curate.store.sql import session
    from curate.store.sql.models import WorkflowRun

    with session.session_scope(url) as db:
        run = db.get(WorkflowRun, run_id)
        assert run is not None
        run.stages, run.status = dict(stages), status
        if finished_at is not None:
            run.finished_at = finished_at
