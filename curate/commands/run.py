"""`curate run WORKFLOW`: run the loop described by a workflow YAML, resuming where it stopped."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Optional

import typer

from curate.commands.common import JsonOption
from curate.output import Reporter, reporter

BRIEF = ("dataset", "seen", "ingested", "rejected", "quality_removed", "curated", "samples", "checkpoint", "best_checkpoint", "pushed",
         "new_human_labels", "label_issues", "reviewed_since_wait", "pulled_new_human_labels", "onnx_int8", "p_value", "skipped", "url")


def _human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]workflow {s['workflow']}[/] run {s['run_id']}: {s['status']}")
    for key, stage in s["stages"].items():
        summary = stage.get("summary", {})
        brief = ", ".join(f"{k}={summary[k]}" for k in BRIEF if k in summary and not isinstance(summary[k], dict))
        if isinstance(summary.get("duplicates"), dict):
            d = summary["duplicates"]
            brief += f", duplicates={d['groups']} groups ({d['cross_split_groups']} across splits: view 'leakage')"
        r.say(f"  {key}: {stage['status']}{' (resumed)' if key in s['resumed_stages'] else ''}  {brief}")
    if s["status"] == "waiting":
        for line in waiting_lines(s["waiting"]):
            r.say(line)
    if s.get("next_round"):
        r.say(f"next round, with a teacher retrained on the labels people fixed: {s['next_round']}")
    r.say(f"report: {s['report']}   browse the faces: curate app --dataset {s.get('dataset') or s['waiting'].get('dataset')}")


def stage_done_lines(out: Reporter, key: str, stage: Any, summary: dict[str, Any], seconds: float) -> None:
    """A finished stage's own summary lines (the ones its command prints), indented under "KEY: done in N s"."""
    out.say(f"{key}: done in {seconds:.0f} s")
    if stage.human is None:
        return
    printed = SimpleNamespace(summary=summary, say=lambda line: out.say(f"    {line}"))
    try:
        stage.human(printed)
    except (KeyError, TypeError, ValueError):  # a summary without the usual keys (a skipped compare...) still ran fine
        out.say(f"    {', '.join(f'{k}={v}' for k, v in summary.items() if not isinstance(v, (dict, list)))}")
    if summary.get("warning"):
        out.say(f"    [bold]warning[/]: {summary['warning']}")


def waiting_lines(w: dict) -> list[str]:
    """What a person needs to go on: where to review, how to log in, what is queued, the command to continue."""
    lines = ["", f"[bold]Waiting for review[/]: {w['pending']} tasks queued in Label Studio at {w.get('url')}"]
    if w.get("per_class_pending"):
        lines.append("  queued by label: " + ", ".join(f"{k} {v}" for k, v in w["per_class_pending"].items()))
    lines.append(f"  log in with the {w.get('login')}")
    lines.append(f"  {w['reviewed_since_wait']} reviewed since the wait began (the loop goes on at {w['min_reviewed']}); after reviewing, "
                 f"continue with: {w['continue_with']}  (or `make run`; add --no-wait to go on without waiting)")
    return lines


CPU_WORKFLOW, GPU_WORKFLOW = Path("workflows/fer2013.yaml"), Path("workflows/fer2013-full.yaml")


def auto_workflow() -> tuple[Path, str]:
    """What `curate run auto` (and so `make run`) runs: the full recipe where a CUDA GPU is, the CPU recipe
    elsewhere (issue 28), and the line that says which and why, printed first."""
    import torch

    if torch.cuda.is_available():
        return GPU_WORKFLOW, (f"recipe: a CUDA GPU is here ({torch.cuda.get_device_name(0)}), so the full recipe: {GPU_WORKFLOW} "
                              f"(ResNet-50 teacher as fold models, MobileNetV2 student); the CPU one is `make run WORKFLOW={CPU_WORKFLOW}`")
    return CPU_WORKFLOW, (f"recipe: no CUDA GPU here, so the CPU recipe: {CPU_WORKFLOW} (fer_cnn_v2 teacher, about 28 min to the review wait "
                          f"on 2 cores); the full recipe (ResNet-50 teacher, hours on a CPU) is `make run WORKFLOW={GPU_WORKFLOW}`")


def run(
    ctx: typer.Context,
    workflow: Annotated[Path, typer.Argument(help="Workflow YAML (see workflows/); 'auto' picks workflows/fer2013-full.yaml where a "
                                                  "CUDA GPU is, else workflows/fer2013.yaml, and says which.")],
    force: Annotated[bool, typer.Option("--force", help="Re-run stages that finished in an earlier run.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not stop for human review: continue with what is reviewed so far.")] = False,
    from_stage: Annotated[Optional[str], typer.Option("--from", help="Re-run from the first stage of this name (e.g. review_pull for "
                                                      "another review round); earlier stages resume as usual.")] = None,
    json_: JsonOption = False,
) -> None:
    """Run every stage of WORKFLOW in order; a stopped or waiting run resumes after its last finished stage."""
    with reporter(json_, _human) as out:
        from curate.settings import load_settings
        from curate.workflow import run_workflow

        if str(workflow) == "auto" and not workflow.exists():
            workflow, why = auto_workflow()
            out.say(why)
            out.update(recipe=str(workflow))
        root = ctx.find_root().params
        settings = load_settings(workflow=workflow, cli={"home": root.get("home")})
        with out.progress(None, f"workflow {workflow.name}") as bar:
            result = run_workflow(workflow, settings, force=force, on_stage=lambda key, state: out.say(f"{key}: {state}"),
                                  progress=bar.advance, no_wait=no_wait, from_stage=from_stage, say=out.say,
                                  on_done=lambda key, stage, summary, seconds: stage_done_lines(out, key, stage, summary, seconds))
        out.update(**result)
        if json_ and result["status"] == "waiting":  # people need this even when a script reads the JSON
            for line in waiting_lines(result["waiting"]):
                out.say(line)
