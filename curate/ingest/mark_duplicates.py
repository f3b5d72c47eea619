"""Write duplicate groups into FiftyOne: the pure finder runs over the whole dataset each time,
so groups stay right when a later ingest adds a split that leaks into an earlier one."""

from __future__ import annotations

from typing import Any

from curate.quality.duplicates import find_duplicates
from curate.store.fo_store import declare_schema

__all__ = ["mark_duplicates"]


def mark_duplicates(ds, max_distance: int) -> dict[str, Any]:  # noqa: ANN001
    """Set duplicate_group / duplicate_of / duplicate_kind / cross_split_duplicate; return counts."""
    declare_schema(ds)  # the duplicate fields exist even on a dataset made before they did
    if len(ds) == 0:
        return {"groups": 0, "exact": 0, "near": 0, "cross_split_groups": 0, "cross_split_samples": 0}
    ids, hashes, phashes, splits, paths, uids, marked = ds.values(["id", "content_hash", "phash", "split", "filepath", "sample_uid",
                                                                   "duplicate_group"])
    found = find_duplicates(hashes, [int(p, 16) for p in phashes], splits, paths, max_distance)
    # Only members of a group, and samples a group held before (whose marks must go), are written: most faces are in
    # no group, and rewriting every sample's four fields cost more than the rest of an ingest's FiftyOne writes.
    touched = sorted(set(found) | {i for i, g in enumerate(marked) if g is not None})
    columns: dict[str, dict[str, Any]] = {"duplicate_group": {}, "duplicate_of": {}, "duplicate_kind": {}, "cross_split_duplicate": {}}
    for i in touched:
        info = found.get(i)
        columns["duplicate_group"][ids[i]] = info.group if info else None
        columns["duplicate_of"][ids[i]] = uids[info.canonical] if info and info.kind != "canonical" else None
        columns["duplicate_kind"][ids[i]] = info.kind if info else None
        columns["cross_split_duplicate"][ids[i]] = info.cross_split if info else None
    if touched:
        for name, values in columns.items():
            ds.set_values(name, values, key_field="id")
    groups = {info.group for info in found.values()}
    cross_groups = {info.group for info in found.values() if info.cross_split}
    return {
        "groups": len(groups),
        "exact": sum(1 for info in found.values() if info.kind == "exact"),
        "near": sum(1 for info in found.values() if info.kind == "near"),
        "cross_split_groups": len(cross_groups),
        "cross_split_samples": sum(1 for info in found.values() if info.cross_split),
        "max_distance": max_distance,
    }
