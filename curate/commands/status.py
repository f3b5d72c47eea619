"""`curate status`: where the ledger is, what it holds, and the settings in force."""

from __future__ import annotations

from typing import Any

import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.exceptions import CurateError
from curate.output import Reporter, reporter


def _human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]curate[/] home {s['settings']['home']}")
    r.say(f"ledger {s['settings']['database_url']} (revision {s['revision']}, head {s['head']})")
    if s.get("datasets") is not None:
        r.say("datasets: " + (", ".join(f"{d['name']} ({d['samples']} samples)" for d in s["datasets"]) or "none yet"))
    if s.get("dataset"):
        d = s["dataset"]
        r.say(f"[bold]{d['dataset']}[/] ({d['format']}) {d['samples']} samples, by split {d['by_split']}")
        r.say(f"  quality-rejected {d['quality_rejected']}, label events {d['label_events']}")
        r.say(f"  current labels {d['current_labels']}")
        r.say(f"  review tasks {d['review_tasks'] or 'none'}")
    r.say(f"Label Studio: {s['settings']['label_studio_url'] or 'embedded (not configured)'}")


def status(ctx: typer.Context, dataset: DatasetOption = None, json_: JsonOption = False) -> None:
    """Show settings (secrets masked), ledger revision and per-dataset counts."""
    from sqlalchemy import func, select

    from curate.store.sql import ledger, session
    from curate.store.sql.models import Dataset, Sample

    with reporter(json_, _human) as out:
        settings = settings_from(ctx, dataset=dataset)
        url = settings.database_url
        rev, head = session.current_revision(url), session.head_revision()
        summary: dict[str, Any] = {"settings": settings.public_dict(), "origins": dict(settings.origins), "revision": rev, "head": head}
        if rev is not None:
            with session.session_scope(url) as db:
                rows = db.execute(
                    select(Dataset.name, func.count(Sample.id)).outerjoin(Sample, Sample.dataset_id == Dataset.id).group_by(Dataset.name)
                ).all()
                summary["datasets"] = [{"name": n, "samples": c} for n, c in rows]
                if dataset is not None:
                    found = ledger.find_dataset(db, dataset)
                    if found is None:
                        raise CurateError(f"dataset {dataset!r} is not in the ledger ({url.split('://')[0]}); ingest it first")
                    summary["dataset"] = ledger.dataset_status(db, found)
        out.update(**summary)
