"""FER2013 class folders as manifest rows, for the benchmarks (plain data: no FiftyOne or SQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def rows_of(root: Path, split: str, limit: int | None, seed: int) -> list:
    from curate.models.manifest import Row
    from curate.taxonomy import canonical

    rows = [Row(p.name, str(p), canonical(p.parent.name), split) for p in sorted((root / split).rglob("*.jpg"))]
    rng = np.random.default_rng(seed)
    rng.shuffle(rows)
    return rows[:limit] if limit else rows
