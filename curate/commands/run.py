"""`curate run WORKFLOW`: run the loop described by a workflow YAML, resuming where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.commands.common import JsonOption
from curate.output import Reporter, reporter


def _human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]workflow {s['workflow']}[/] run {s['run_id']} done")
    for key, stage in s["stages"].items():
        summary = stage.get("summary", {})
        brief = ", ".join(f"{k}={summary[k]}" for k in ("dataset", "seen", "ingested", "rejected", "quality_removed", "curated", "samples",
                                                          "checkpoint", "best_checkpoint", "pushed", "new_human_labels") if k in summary)
        if "duplicates" in summary:
            d = summary["duplicates"]
            brief += f", duplicates={d['groups']} groups ({d['cross_split_groups']} across splits: view 'leakage')"
        r.say(f"  {key}: {stage['status']}{' (resumed)' if key in s['resumed_stages'] else ''}  {brief}")


def run(
    ctx: typer.Context,
    workflow: Annotated[Path, typer.Argument(help="Workflow YAML (see workflows/).")],
    force: Annotated[bool, typer.Option("--force", help="Re-run stages that finished in an earlier run.")] = False,
    json_: JsonOption = False,
) -> None:
    """Run every stage of WORKFLOW in order; a stopped run resumes after its last finished stage."""
    with reporter(json_, _human) as out:
        from curate.settings import load_settings
        from curate.workflow import run_workflow

        root = ctx.find_root().params
        settings = load_settings(workflow=workflow, cli={"home": root.get("home")})
        with out.progress(None, f"workflow {workflow.name}") as bar:
            result = run_workflow(workflow, settings, force=force, on_stage=lambda key, state: out.say(f"{key}: {state}"),
                                  progress=bar.advance)
        out.update(**result)
