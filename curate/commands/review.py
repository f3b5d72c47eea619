"""`curate review push|pull|status`: human review in Label Studio, recorded in the SQL ledger."""

from __future__ import annotations


import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.output import Reporter, reporter

app = typer.Typer(help="Send uncertain samples to Label Studio and bring human labels back.", no_args_is_help=True)


def _push_human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: pushed {s['pushed']} tasks to project {s['project']} on {s['server']} "
          f"({s['already_in_review']} already in review, {s['left_in_queue']} left in the queue)")
    if s["by_class"]:
        r.say("by class: " + ", ".join(f"{k} {v}" for k, v in s["by_class"].items()))
    if s["adopted_from_interrupted_push"]:
        r.say(f"recorded {s['adopted_from_interrupted_push']} tasks left by an interrupted push")
    for item in s["refused"]:
        r.say(f"refused {item['path']}: {item['reason']}")




def _pull_human(r: Reporter) -> None:
    s = r.summary
    if s["project"] is None:
        r.say(f"{s['dataset']}: no review project on {s['server']}; run `curate review push` first")
        return
    r.say(f"[bold]{s['dataset']}[/]: listed {s['listed']} tasks; {s['changed']} changed since the last pull ({s['unchanged']} unchanged): "
          f"{s['done']} decided, {s['skipped']} skipped, {s['conflict']} tied; {s['new_human_labels']} new human labels, "
          f"{s['label_changes']} of them changing the label" + (f"; {s['deleted_on_server']} deleted in Label Studio" if s["deleted_on_server"] else ""))




def _status_human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: {s['tasks']} review tasks: {s['pending']} pending, {s['done']} done, {s['skipped']} skipped, "
          f"{s['conflict']} tied")
    for label, c in s["per_class"].items():
        r.say(f"  {label:<10} pending {c['pending']:>5}  done {c['done']:>5}  skipped {c['skipped']:>5}  tied {c['conflict']:>4}")

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.0f} %"

    r.say(f"humans changed the label in {pct(s['human_changed_label'])} of decided tasks; agreed with the model in "
          f"{pct(s['agreement_with_model'])}; annotator agreement {pct(s['annotator_agreement'])} over {s['multi_annotated']} multi-annotated tasks")


@app.command()
def status(ctx: typer.Context, dataset: DatasetOption = None, json_: JsonOption = False) -> None:
    """Review progress per class, how often humans changed labels, and agreement (from the ledger; no server needed)."""
    with reporter(json_, _status_human) as out:
        from curate.review.summary import review_status

        s = settings_from(ctx, dataset=dataset)
        out.update(**review_status(s.database_url, s.dataset))
