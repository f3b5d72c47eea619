"""Apply thresholds to stored scores: FiftyOne's ``quality_rejected`` and SQL ``samples`` in step.

The ledger is the truth: what changed is computed against SQL and written there first; FiftyOne is
then rewritten in full. A failure between the two heals on the next run (SQL already right,
FiftyOne rewritten again); computing from FiftyOne's old values instead would leave SQL stale for good.
"""

from __future__ import annotations

import collections
from typing import Any

from curate.quality.scores import quality_reasons

__all__ = ["apply_thresholds"]


def apply_thresholds(dataset: str, url: str, blur_max: float, occlusion_max: float) -> dict[str, Any]:
    from sqlalchemy import update

    from curate.store import fo_store
    from curate.store.sql import ledger, session
    from curate.store.sql.models import Sample

    ds = fo_store.load_dataset(dataset, create=False)
    blur, occlusion, uids = ds.values(["blur", "occlusion", "sample_uid"])
    # Datasets ingested before the contrast score existed have none: their blank frames stay under "blur".
    contrasts = ds.values("contrast") if "contrast" in ds.get_field_schema() else [None] * len(uids)
    new = [quality_reasons(b, o, blur_max, occlusion_max, c) for b, o, c in zip(blur, occlusion, contrasts)]
    changed: list[tuple[str, str | None]] = []
    with session.session_scope(url) as db:
        found = ledger.find_dataset(db, dataset)
        if found is not None:
            stored = dict(db.query(Sample.uid, Sample.quality_rejected).filter(Sample.dataset_id == found.id).all())
            changed = [(u, ",".join(n) or None) for u, n in zip(uids, new) if u in stored and stored[u] != (",".join(n) or None)]
            by_value: dict[str | None, list[str]] = collections.defaultdict(list)
            for uid, value in changed:
                by_value[value].append(uid)
            for value, group in by_value.items():
                for start in range(0, len(group), 500):
                    db.execute(update(Sample).where(Sample.dataset_id == found.id, Sample.uid.in_(group[start : start + 500]))
                               .values(quality_rejected=value))
    ds.set_values("quality_rejected", new)
    fo_store.ensure_views(ds)
    counts = collections.Counter(r for reasons in new for r in reasons)
    return {
        "dataset": dataset,
        "blur_max": blur_max,
        "occlusion_max": occlusion_max,
        "samples": len(new),
        "removed": {"blur": counts.get("blur", 0), "occlusion": counts.get("occlusion", 0), "blank": counts.get("blank", 0)},
        "curated": sum(1 for n in new if not n),
        "changed": len(changed),
    }
