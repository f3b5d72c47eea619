"""Stages of human review: ``labelstudio`` (the embedded server), ``review_push``, ``wait_review``, ``review_pull``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.review.routing import SECOND_OPINIONS, STRATEGIES
from curate.stages.spec import Stage, StageContext, option


class StageWaiting(Exception):  # noqa: N818 - a state, not a failure
    """Raised by a stage that needs people before the workflow can go on; carries the stage's summary."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(summary.get("message", "waiting"))
        self.summary = summary


@dataclass
class LabelStudioStageOptions:
    data_root: Path | None = option(None, "The folder holding the dataset's images, served as local files (not /, $HOME or a "
                                          "folder containing CURATE_HOME) [default: the dataset's ingest root].")
    port: int = option(8080, "Port on 127.0.0.1.", minimum=1, maximum=65535)
    dataset: str | None = option(None, "Dataset whose images are served (for the default --data-root).", setting="dataset")


def run_labelstudio(ctx: StageContext, opts: LabelStudioStageOptions) -> dict[str, Any]:
    from curate.exceptions import CurateError
    from curate.review import server

    s = ctx.settings
    if s.label_studio_url:
        return {"remote": True, "url": s.label_studio_url, "note": "LABEL_STUDIO_URL is set: using that server, nothing started"}
    root = ctx.path(opts.data_root)
    if root is None:
        root = dataset_root(s.database_url, s.dataset)
        if root is None:  # no silent default to the current folder
            raise CurateError(f"dataset {s.dataset!r} is not ingested here, so its image folder is unknown; pass --data-root DIR "
                              "(data_root in a workflow)")
    return server.serve(s.home, opts.port, root, say=ctx.say)


def dataset_root(url: str, dataset: str) -> Path | None:
    """The folder the dataset was ingested from (its csv's folder for a csv release)."""
    from curate.store.sql import ledger, session

    session.require_schema(url)  # a fresh home has no ledger yet: the embedded default creates it, as every stage does
    with session.session_scope(url) as db:
        found = ledger.find_dataset(db, dataset)
        root = Path(found.root) if found is not None and found.root else None
    return (root.parent if root.is_file() else root) if root is not None else None


@dataclass
class PushStageOptions:
    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    threshold: float | None = option(None, "Route samples whose teacher confidence is below this.", minimum=0.0, maximum=1.0,
                                     setting="review_threshold")
    limit: int | None = option(None, "Push at most N tasks (most likely errors first).", minimum=1)
    batch_size: int = option(100, "Tasks per import request.", minimum=1)
    annotators: int | None = option(None, "People who label each task (majority wins; ties are flagged).", minimum=1)
    routing: str = option("likelihood", "Which faces go first: likelihood (likeliest label errors), balanced (the same, classes "
                                        "dealt round-robin), confidence, label_issues or random (bench/curation.py compares them).",
                          choices=STRATEGIES)
    second_opinions: str = option("all", "With --annotators above 1: all (every task asks that many people) or activelab (each task "
                                         "asks one; ActiveLab reopens answered tasks worth another look, in place of new faces "
                                         "within --limit).", choices=SECOND_OPINIONS)


def run_push(ctx: StageContext, opts: PushStageOptions) -> dict[str, Any]:
    from curate.review.push import push

    s = ctx.settings
    return push(s, s.dataset, s.review_threshold, opts.limit, opts.batch_size, ctx.progress, annotators=opts.annotators,
                routing=opts.routing, second_opinions=opts.second_opinions)


@dataclass
class PullStageOptions:
    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    full: bool = option(False, "List every task, not only those updated since the last pull (also notices tasks deleted in "
                               "Label Studio).")


def run_pull(ctx: StageContext, opts: PullStageOptions) -> dict[str, Any]:
    from curate.review.pull import pull

    return pull(ctx.settings, ctx.settings.dataset, full=opts.full)


@dataclass
class WaitStageOptions:
    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    min_reviewed: int = option(1, "Go on once this many tasks were decided since the wait began.", minimum=1)
    baseline: int | None = option(None, cli=False)  # decided tasks when the wait began (the workflow carries it over)


def run_wait(ctx: StageContext, opts: WaitStageOptions) -> dict[str, Any]:
    """Pull what people did; go on when enough was reviewed since the wait began, else ask the workflow to wait."""
    from curate.review.pull import pull
    from curate.review.summary import review_status

    s = ctx.settings
    before = review_status(s.database_url, s.dataset)
    baseline = opts.baseline if opts.baseline is not None else _decided(before)
    pulled = pull(s, s.dataset)
    now = review_status(s.database_url, s.dataset)
    reviewed = _decided(now) - baseline
    summary = {"dataset": s.dataset, "baseline": baseline, "reviewed_since_wait": reviewed, "min_reviewed": opts.min_reviewed,
               "pending": now["pending"], "done": now["done"], "pulled_new_human_labels": pulled.get("new_human_labels", 0),
               "pulled_label_changes": pulled.get("label_changes", 0), "pulled_removed": pulled.get("removed") or {},
               "per_class_pending": {k: v["pending"] for k, v in now["per_class"].items() if v["pending"]}}
    if reviewed >= opts.min_reviewed:
        return {**summary, "waited": False}
    if ctx.no_wait:
        return {**summary, "waited": False, "note": f"--no-wait: going on with {reviewed} reviewed since the wait began"}
    summary.update(_where_to_review(ctx))
    raise StageWaiting({**summary, "waited": True})


def _decided(status: dict[str, Any]) -> int:
    return int(status["done"] + status["skipped"] + status["conflict"])


def _where_to_review(ctx: StageContext) -> dict[str, Any]:
    from curate.review import server

    s = ctx.settings
    again = f"curate run {ctx.workflow}" if ctx.workflow else "curate run WORKFLOW"
    if s.label_studio_url:
        return {"url": s.label_studio_url, "login": "your Label Studio account", "continue_with": again}
    state = server.status(s.home)
    creds = server.paths(s.home).credentials
    return {"url": state.get("url"), "login": f"user and password in {creds} (mode 0600)", "continue_with": again,
            "server_running": bool(state.get("running"))}


def _serve_human(r: Any) -> None:
    s = r.summary
    if s.get("remote"):
        r.say(f"Label Studio: {s['url']} ({s['note']})")
        return
    state = "already running" if s.get("already_running") else "started"
    r.say(f"Label Studio {state}: {s['url']} (serving images under {s['data_root']})")
    if "username" in s:
        r.say(f"log in as {s['username']}; password and API token ({s['token_hint']}) are in {s['credentials_file']} (mode 0600)")


def _push_human(r: Any) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: pushed {s['pushed']} tasks to project {s['project']} on {s['server']} "
          f"({s['already_in_review']} already in review, {s['left_in_queue']} left in the queue)")
    if s["by_class"]:
        r.say("by class: " + ", ".join(f"{k} {v}" for k, v in s["by_class"].items()))
    if s["adopted_from_interrupted_push"]:
        r.say(f"recorded {s['adopted_from_interrupted_push']} tasks left by an interrupted push")
    if s.get("reopened"):
        r.say(f"reopened {s['reopened']} answered tasks for one more annotator (ActiveLab: worth more than a new face)")
    for item in s["refused"]:
        r.say(f"refused {item['path']}: {item['reason']}")


def _pull_human(r: Any) -> None:
    s = r.summary
    if s["project"] is None:
        r.say(f"{s['dataset']}: no review project on {s['server']}; run `curate review push` first")
        return
    r.say(f"[bold]{s['dataset']}[/]: listed {s['listed']} tasks; {s['changed']} changed since the last pull ({s['unchanged']} unchanged): "
          f"{s['done']} decided, {s['skipped']} skipped, {s['conflict']} tied; {s['new_human_labels']} new human labels, "
          f"{s['label_changes']} of them changing the label" + (f"; {s['deleted_on_server']} deleted in Label Studio" if s["deleted_on_server"] else "")
          + "".join(f"; {n} taken out of the working set as {reason.replace('_', ' ')!r}" for reason, n in s.get("removed", {}).items() if n)
          + (f"; {s['returned_to_working_set']} back in the working set" if s.get("returned_to_working_set") else "")
          + (f"; {s['decided_by_crowdlab']} decided by CROWDLAB (ties and overruled majorities)" if s.get("decided_by_crowdlab") else ""))


def _wait_human(r: Any) -> None:
    s = r.summary
    removed = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in s.get("pulled_removed", {}).items() if n)
    # This pull is the one that brings the answers in: the review_pull stage after it finds nothing new, so say it here.
    r.say(f"{s['dataset']}: {s['reviewed_since_wait']} tasks reviewed since the wait began ({s['pending']} still pending); pulled "
          f"{s['pulled_new_human_labels']} human labels ({s.get('pulled_label_changes', 0)} changing the label)"
          + (f", taken out as {removed}" if removed else "") + (f"; {s['note']}" if s.get("note") else ""))


LABELSTUDIO = Stage("labelstudio", "labelstudio serve", LabelStudioStageOptions, run_labelstudio,
                    "Install (first use), start and wait for Label Studio on 127.0.0.1; print the URL and how to log in.", _serve_human)
REVIEW_PUSH = Stage("review_push", "review push", PushStageOptions, run_push,
                    "Create review tasks for uncertain samples and likely label errors, with the model's guess pre-selected.",
                    _push_human, "push", writes=True)
REVIEW_PULL = Stage("review_pull", "review pull", PullStageOptions, run_pull,
                    "Record completed reviews as human label events and mirror them into FiftyOne (safe to repeat).",
                    _pull_human)  # no writer lock: pulls are idempotent and may overlap (the FiftyOne mirror takes its own lock)
WAIT_REVIEW = Stage("wait_review", "review wait", WaitStageOptions, run_wait,
                    "Pull what people reviewed; go on once enough was, else record the run as waiting.", _wait_human)
