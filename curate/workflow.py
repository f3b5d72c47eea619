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

A stage that needs people (``wait_review``) raises ``StageWaiting``: the run is recorded as
``waiting`` with that stage's summary (including how many tasks were decided when the wait began),
and the next run resumes at it, counting reviews from that baseline. Stages and their options come
from ``curate.stages`` (declared once, shared with the command line); every stage's options are
checked before the first one runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

from curate.exceptions import CurateError
from curate.secrets import SECRET_ENV
from curate.settings import Settings
from curate.stages import STAGES

__all__ = ["WorkflowError", "load_workflow", "run_workflow"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class WorkflowError(CurateError):
    pass


def readable_variable(name: str) -> bool:
    """Whether a workflow's ${NAME} may read this variable: data locations (``*_ROOT``) and curate's own settings
    (``CURATE_*``), never a secret or anything else of the environment (a workflow file can come from anyone)."""
    return (name.endswith("_ROOT") or name.startswith("CURATE_")) and name not in SECRET_ENV


def _expand(value: Any) -> Any:
    """${VAR} and ${VAR:-default} in strings, so a workflow can be pointed elsewhere from the environment
    (only variables :func:`readable_variable` allows: the others are refused before anything runs)."""
    if isinstance(value, str):
        for m in _VAR.finditer(value):
            if not readable_variable(m.group(1)):
                raise WorkflowError(f"${{{m.group(1)}}}: a workflow may read only *_ROOT and CURATE_* variables (not secrets); "
                                    "rename the variable or write the value into the file")
        return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def load_workflow(path: Path) -> dict[str, Any]:
    """Read and check a workflow: every stage known, every option one the stage takes, of the right type."""
    from curate.settings import read_yaml_mapping
    from curate.stages.spec import options_from_params

    doc = read_yaml_mapping(path)
    stages = doc.get("stages")
    if not isinstance(stages, list) or not stages:
        raise WorkflowError(f"{path}: a workflow needs a non-empty 'stages' list")
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict) or stage.get("stage") not in STAGES:
            name = stage.get("stage") if isinstance(stage, dict) else stage
            raise WorkflowError(f"{path}: stage {i + 1} ({name!r}) is not one of {', '.join(STAGES)}")
        # Checked before anything runs: a typo in the last stage must not surface after an hour of training.
        options_from_params(STAGES[stage["stage"]], _expand({k: v for k, v in stage.items() if k != "stage"}), f"{path}: stage {i + 1}")
    return doc


def run_workflow(path: Path, settings: Settings, force: bool = False, on_stage: Callable[[str, str], None] | None = None,
                 progress: Callable[[int], None] | None = None, no_wait: bool = False, from_stage: str | None = None,
                 say: Callable[[str], None] | None = None,
                 on_done: Callable[[str, Any, dict[str, Any], float], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a workflow; returns {workflow, run_id, status, stages: {key: {status, summary}}}.

    ``on_stage(key, state)`` hears each stage start (or be skipped); ``on_done(key, stage, summary, seconds)`` hears
    each one that finished, as it finishes, so a person watching sees what it did without waiting for the end.

    A stage that needs people (``wait_review``) ends the run as ``waiting``; the next run resumes at it.
    ``from_stage`` re-runs from the first stage of that name (another review round: ``--from review_pull``; one whose
    queue comes from a teacher retrained on the corrected labels: ``--from teacher``, the ``next_round`` a finished loop
    names, measured in bench/rounds.py).
    """
    from curate.report.build import report_path
    from curate.stages import StageContext, StageWaiting
    from curate.stages.spec import options_from_params, resolve_settings
    from curate.store.sql.models import utcnow

    doc = load_workflow(path)
    names = [stage["stage"] for stage in doc["stages"]]
    if from_stage is not None and from_stage not in names:
        raise WorkflowError(f"{path}: --from {from_stage!r} is not a stage of this workflow ({', '.join(dict.fromkeys(names))})")
    expanded = [_expand({k: v for k, v in stage.items() if k != "stage"}) for stage in doc["stages"]]
    chain = _chain_keys(_expand(doc.get("settings") or {}), [(st["stage"], p) for st, p in zip(doc["stages"], expanded)])
    name = str(doc.get("name") or path.stem)
    next_round = None if from_stage is not None or force else _next_round(settings.database_url, name, names, chain)
    if next_round is not None:
        from_stage = "wait_review"
        if say:
            say(f"the last round finished ({next_round['finished']}): the next one starts at the review wait, counting the "
                f"reviews decided since then")
    rerun_from = names.index(from_stage) if from_stage is not None else len(names)
    run_id, finished, waiting = _start_run(settings.database_url, name, path, names, chain, rerun_from, force)
    if next_round is not None:
        waiting = {next_round["key"]: {"summary": {"baseline": next_round["baseline"]}}}
    results: dict[str, Any] = dict(finished)
    base = path.parent.resolve()
    for index, stage in enumerate(doc["stages"]):
        key = f"{index + 1}:{stage['stage']}"
        if key in finished:
            if on_stage:
                on_stage(key, "skipped (done in an earlier run)")
            continue
        if on_stage:
            on_stage(key, "running")
        spec = STAGES[stage["stage"]]
        params = dict(expanded[index])
        if key in waiting and spec.name == "wait_review":  # the wait began in an earlier run: count from then
            params["baseline"] = waiting[key]["summary"].get("baseline")
        opts = options_from_params(spec, params, f"{path}: stage {index + 1}")
        ctx = StageContext(resolve_settings(spec, opts, settings), base=base, say=say or (lambda _m: None), progress=progress,
                           no_wait=no_wait, workflow=str(path))
        started = time.monotonic()
        try:
            summary = spec.execute(ctx, opts)
        except StageWaiting as wait:
            results[key] = {"status": "waiting", "key": chain[index], "summary": wait.summary}
            _save(settings.database_url, run_id, results, "waiting")
            _refresh_report(ctx, say)
            return {"workflow": name, "run_id": run_id, "status": "waiting", "resumed_stages": sorted(finished), "stages": results,
                    "waiting": {"stage": key, **wait.summary}, "report": str(report_path(ctx.settings.home, ctx.settings.dataset))}
        except CurateError:
            _save(settings.database_url, run_id, results, "failed")
            raise
        results[key] = {"status": "done", "key": chain[index], "summary": summary, "seconds": round(time.monotonic() - started, 1)}
        _save(settings.database_url, run_id, results, "running")
        if on_done:
            on_done(key, spec, summary, time.monotonic() - started)
        if spec.name != "report":
            _refresh_report(ctx, say)
    _save(settings.database_url, run_id, results, "done", finished_at=utcnow())
    # The dataset the loop ends on (the last stage's, even when every stage resumed and none ran now).
    last = STAGES[names[-1]]
    dataset = resolve_settings(last, options_from_params(last, expanded[-1], str(path)), settings).dataset
    out = {"workflow": name, "run_id": run_id, "status": "done", "resumed_stages": sorted(finished), "stages": results,
           "dataset": dataset, "report": str(report_path(settings.home, dataset))}
    if {"teacher", "review_push"} <= set(names):  # a loop that routes by its own teacher: say how the next round retrains it
        out["next_round"] = f"curate review pull && curate run {path} --from teacher"
    return out


def _next_round(url: str, name: str, names: list[str], chain: list[str]) -> dict[str, Any] | None:
    """Where a plain `curate run` of a loop that finished goes on: the next review round, from the wait.

    Why: after a finished round people review more faces and run `make run` again (issue 39); re-running nothing would
    leave their answers unused until someone knew to add ``--from``. The wait counts from the decided tasks at which
    the finished round's wait let it go on, so reviews made after that round are counted, not taken as the baseline.
    None when the workflow has no wait, its previous run did not finish, or its wait's settings changed since."""
    from sqlalchemy import select

    from curate.store.sql import session
    from curate.store.sql.models import WorkflowRun

    if "wait_review" not in names:
        return None
    index = names.index("wait_review")
    key = f"{index + 1}:wait_review"
    session.require_schema(url)
    with session.session_scope(url) as db:
        previous = db.scalars(select(WorkflowRun).where(WorkflowRun.workflow == name).order_by(WorkflowRun.id.desc())).first()
        if previous is None or previous.status != "done":
            return None
        record = (previous.stages or {}).get(key) or {}
        finished = previous.finished_at.strftime("%Y-%m-%d %H:%M UTC") if previous.finished_at else "earlier"
    summary = record.get("summary") or {}
    if record.get("key") != chain[index] or summary.get("baseline") is None:
        return None
    return {"key": key, "baseline": int(summary["baseline"]) + int(summary.get("reviewed_since_wait") or 0), "finished": finished}


def _start_run(url: str, name: str, path: Path, names: list[str], chain: list[str], rerun_from: int,
               force: bool) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """A new workflow_runs row, carrying over the leading stages an earlier run finished with the same chain key.

    Returns (run id, finished stages by key, the stage an earlier run was waiting at)."""
    from sqlalchemy import select

    from curate.store.sql import session
    from curate.store.sql.models import WorkflowRun

    session.require_schema(url)
    with session.session_scope(url) as db:
        previous = db.scalars(select(WorkflowRun).where(WorkflowRun.workflow == name).order_by(WorkflowRun.id.desc())).first()
        finished: dict[str, Any] = {}
        waiting: dict[str, Any] = {}
        if not force and previous is not None:
            done = previous.stages or {}
            for index, stage in enumerate(names[:rerun_from]):  # the leading stages that finished with the same key
                key = f"{index + 1}:{stage}"
                record = done.get(key, {})
                if record.get("key") != chain[index]:
                    break
                if record.get("status") == "waiting":
                    waiting[key] = record
                if record.get("status") != "done":
                    break
                finished[key] = record
        run = WorkflowRun(workflow=name, path=str(path.resolve()), config_hash=chain[-1], status="running", stages=dict(finished))
        db.add(run)
        db.flush()
        return run.id, finished, waiting


def _refresh_report(ctx: Any, say: Callable[[str], None] | None) -> None:
    """Each stage rewrites the dataset's report; a report that cannot be written never fails the stage."""
    from curate.report.build import build_report

    try:
        build_report(ctx.settings.dataset, ctx.settings.database_url, ctx.settings.home)
    except Exception as exc:  # noqa: BLE001 - the report is a view of the stores: it must never fail the stage it follows
        if say:
            say(f"warning: the report was not updated: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def _chain_keys(settings: dict[str, Any], stages: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """One key per stage: a hash of the settings and of every stage up to and including it (expanded parameters)."""
    import json

    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    keys = []
    for stage, params in stages:
        h.update(json.dumps([stage, params], sort_keys=True, default=str).encode())
        keys.append(h.hexdigest())
    return keys


def _redacted(value: Any) -> Any:
    """A stage summary with every secret masked (a password inside LABEL_STUDIO_URL, a registered token) before it is
    stored: workflow_runs rows are read by whoever can read the ledger, and outlive the run."""
    from curate.secrets import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def _save(url: str, run_id: int, stages: dict[str, Any], status: str, finished_at: Any = None) -> None:
    from curate.store.sql import session
    from curate.store.sql.models import WorkflowRun

    with session.session_scope(url) as db:
        run = db.get(WorkflowRun, run_id)
        assert run is not None
        run.stages, run.status = _redacted(dict(stages)), status
        if finished_at is not None:
            run.finished_at = finished_at
