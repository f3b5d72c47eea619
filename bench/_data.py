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


FER_CLASSES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")  # FER2013 has no contempt
# Where a tired or unsure annotator's wrong label goes: each expression's most confused partner in FER2013.
CONFUSABLE = {"fear": "surprise", "surprise": "fear", "sad": "neutral", "neutral": "sad", "anger": "disgust", "disgust": "anger",
              "happy": "neutral"}
NOISE_KINDS = ("uniform", "confusable")


def inject_noise(rows: list, kind: str, rate: float, seed: int) -> tuple[list, np.ndarray]:
    """(rows with ``rate`` of their labels flipped, which were flipped): ``confusable`` flips to the partner above,
    ``uniform`` to any other FER2013 class. The draw depends on the rows' file names, not their order."""
    import dataclasses

    if kind not in NOISE_KINDS:
        raise SystemExit(f"error: --noise {kind!r}: one of {', '.join(NOISE_KINDS)}")
    order = sorted(range(len(rows)), key=lambda i: rows[i].uid)
    rng = np.random.default_rng(seed + 1)
    flipped = np.zeros(len(rows), bool)
    flipped[np.array(order)[rng.choice(len(rows), int(round(rate * len(rows))), replace=False)]] = True
    noisy = []
    for row, flip in zip(rows, flipped):
        if flip:
            label = CONFUSABLE[row.label] if kind == "confusable" else str(rng.choice([c for c in FER_CLASSES if c != row.label]))
            row = dataclasses.replace(row, label=label)
        noisy.append(row)
    return noisy, flipped


def review_candidates(given: np.ndarray, probs: np.ndarray, temperature: float):  # noqa: ANN201
    """(routing candidates with uid = row index, cleanlab's verdict) as `curate errors` and `curate review push` see the
    faces: ``given`` label indices, out-of-fold ``probs``.

    The pre-label confidence is the out-of-fold probability's maximum after temperature scaling (the product's comes
    from the whole teacher; for the faces a teacher trained on it is higher, which only matters below the label issues)."""
    from curate.errors.analysis import label_issues
    from curate.models.calibrate import softmax
    from curate.review.routing import Candidate
    from curate.taxonomy import EMOTIONS

    found = label_issues(given, probs)
    calibrated = softmax(np.log(np.clip(probs, 1e-8, 1.0)), temperature)
    cands = [Candidate(str(i), EMOTIONS[g], EMOTIONS[int(p.argmax())], float(p.max()), bool(f), float(q))
             for i, (g, p, f, q) in enumerate(zip(given, calibrated, found.is_issue, found.quality))]
    return cands, found


def routing_lift(given: list[str], flipped: np.ndarray, probs: np.ndarray, temperature: float, sizes: tuple[int, ...],
                 threshold: float = 0.9) -> dict:
    """The share of injected flips in the first ``size`` faces of each review queue (:func:`review_candidates`, routed by
    curate.review.routing), against a random sample's share."""
    from curate.review.routing import route
    from curate.taxonomy import EMOTIONS

    cands, found = review_candidates(np.array([EMOTIONS.index(g) for g in given]), probs, temperature)
    base = float(flipped.mean())
    out = {"faces": len(given), "flipped_share": base, "label_issues_flagged": int(found.is_issue.sum()),
           "flips_among_label_issues": float(flipped[found.is_issue].mean()) if found.is_issue.any() else None, "queues": {}}
    for strategy in ("likelihood", "label_issues", "confidence", "random"):
        queue = route(cands, threshold, strategy=strategy)
        for size in sizes:
            picked = np.array([int(r.uid) for r in queue[:size]], int)
            share = float(flipped[picked].mean()) if len(picked) else None
            out["queues"].setdefault(strategy, {})[str(size)] = {
                "queued": len(picked), "flipped_share": share, "lift_over_random": round(share / base, 2) if share is not None and base else None}
    return out
