"""Write duplicate groups into FiftyOne: the pure finder runs over the whole dataset each time,
so groups stay right when a later ingest adds a split that leaks into an earlier one."""

from __future__ import annotations

from typing import Any

from curate.quality.duplicates import find_duplicates

__all__ = ["mark_duplicates"]


def mark_duplicates(ds, max_distance: int) -> dict[str, Any]:  # noqa: ANN001
    """Set duplicate_group / duplicate_of / duplicate_kind / cross_split_duplicate; return counts."""
    if len(ds) == 0:
        return {"groups": 0, "exact": 0, "near": 0, "cross_split_groups": 0, "cross_split_samples": 0}
    hashes, phashes, splits, paths, uids = ds.values(["content_hash", "phash", "split", "filepath", "sample_uid"])
    found = find_duplicates(hashes, [int(p, 16) for p in phashes], splits, paths, max_distance)
    group, of, kind, cross = [], [], [], []
    for i in range(len(hashes)):
        info = found.get(i)
        group.append(info.group if info else None)
        of.append(uids[info.canonical] if info and info.kind != "canonical" else None)
        kind.append(info.kind if info else None)
        cross.append(info.cross_split if info else None)
    for name, values in (("duplicate_group", group), ("duplicate_of", of), ("duplicate_kind", kind), ("cross_split_duplicate", cross)):
        ds.set_values(name, values)
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
