"""FER2013 class folders as manifest rows, for the benchmarks (plain data: no FiftyOne or SQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def rows_of(root: Path, split: str, limit: int | None, seed: int, blurred_dir: Path | None = None) -> list:
    from curate.models.manifest import Row
    from curate.taxonomy import canonical

    rows = [Row(p.name, str(p), canonical(p.parent.name), split) for p in sorted((root / split).rglob("*.jpg"))]
    rng = np.random.default_rng(seed)
    rng.shuffle(rows)
    return rows[:limit] if limit else rows


def blur_copy(rows: list, out: Path, sigma: float) -> list:
    import cv2

    from curate.models.manifest import Row

    out.mkdir(parents=True, exist_ok=True)
    blurred = []
    for r in rows:
        target = out / f"{Path(r.path).parent.name}_{Path(r.path).name}"
        if not target.exists():
            cv2.imwrite(str(target), cv2.GaussianBlur(cv2.imread(r.path, cv2.IMREAD_GRAYSCALE), (0, 0), sigma))
        blurred.append(Row(r.uid, str(target), r.label, r.split))
    return blurred
