"""`curate review push|pull|status`: human review in Label Studio, recorded in the SQL ledger."""

from __future__ import annotations

import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.output import Reporter, reporter

app = typer.Typer(help="Send uncertain samples to Label Studio and bring human labels back.", no_args_is_help=True)


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
    for annotator, quality in sorted((s.get("annotator_quality") or {}).items(), key=lambda kv: -kv[1]):
        r.say(f"  annotator {annotator}: quality {quality:.2f} (CROWDLAB)")
    removed = s.get("removed_by_review") or {}
    if any(removed.values()):
        r.say("out of the working set by review: " + ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in removed.items()))


@app.command()
def status(ctx: typer.Context, dataset: DatasetOption = None, json_: JsonOption = False) -> None:
    """Review progress per class, how often humans changed labels, and agreement (from the ledger; no server needed)."""
    with reporter(json_, _status_human) as out:
        from curate.review.summary import review_status

        s = settings_from(ctx, dataset=dataset)
        out.update(**review_status(s.database_url, s.dataset))
