"""Which evidence finds wrong labels (issue 30): each routing signal alone and combined, on labels the teacher learned from.

    python bench/cpu_teacher.py --noise confusable --name noisy-confusable     # first: the honest teacher (~20 min)
    python bench/signals.py --probs bench/results/teacher-oof-cpu-noisy-confusable.npz \\
                            --teacher bench/runs/cpu-teacher/noisy-confusable/teacher-*/teacher.safetensors

Every FER2013 train face carries the label the teacher was trained on (20 % flipped) and its out-of-fold probabilities.
A queue is an order over all faces; reviewing the first share of it with an exact reviewer fixes the flips in that
share, so label accuracy at a budget is (1 - noise) + flips found / faces: the same figure bench/curation.py reads from
the ledger after real Label Studio rounds with an exact reviewer (tests/test_curation_bench.py checks that identity),
here for every signal at once and on all 28,709 faces instead of a 1,000-face sample.

Signals (higher = likelier wrong):
- ``oof``: 1 - out-of-fold probability of the given label (cleanlab's self-confidence);
- ``curate``: the shipped order (`review push --routing likelihood`: cleanlab's flags first, each by self-confidence);
- ``knn``: 1 - share of the face's 10 nearest neighbours (cosine, the teacher's embeddings) that carry its given label;
- ``oof+knn``: 1 - the mean of the two probabilities of the given label;
- ``curate+knn``: the shipped order with cleanlab's flags ranked by that mean instead of self-confidence alone;
- ``duplicates``: ``oof``, with faces whose near-duplicate group holds another label first (FER2013 has ~2,000 groups);
- ``margin``, ``entropy``, ``oof_adjusted``: cleanlab's other label-quality scores (normalized margin, confidence-weighted
  entropy, self-confidence after subtracting each class's average confidence);
- ``curate+margin``: the shipped order with cleanlab's flags ranked by the normalized margin;
- ``random``: a seeded shuffle.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import budget_table_header  # noqa: E402

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parents[1] / "shared/data/fer2013"
BUDGETS = (0.05, 0.10, 0.20, 0.30, 0.50, 0.70)
NEIGHBOURS = 10


def knn_label_share(embeddings: np.ndarray, labels: np.ndarray, classes: int, k: int = NEIGHBOURS) -> np.ndarray:
    """(N, classes): the label distribution of each face's k nearest neighbours (cosine, itself excluded)."""
    from sklearn.neighbors import NearestNeighbors

    unit = embeddings / np.clip(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12, None)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(unit).kneighbors(unit)
    share = np.zeros((len(labels), classes))
    for column in idx[:, 1:].T:
        share[np.arange(len(labels)), labels[column]] += 1.0 / k
    return share


def duplicate_conflicts(paths: list[Path], labels: np.ndarray) -> tuple[np.ndarray, int]:
    """(faces whose exact or near-duplicate group holds another given label, groups), with ingest's own hashing."""
    import cv2

    from curate.quality.decode import phash
    from curate.quality.duplicates import find_duplicates

    hashes, phashes = [], []
    for path in paths:
        data = path.read_bytes()
        hashes.append(hashlib.sha256(data).hexdigest())
        phashes.append(phash(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)))
    found = find_duplicates(hashes, phashes, ["train"] * len(paths), [str(p) for p in paths])
    groups: dict[int, list[int]] = {}
    for i, info in found.items():
        groups.setdefault(info.group, []).append(i)
    conflict = np.zeros(len(paths), bool)
    for members in groups.values():
        if len({int(labels[i]) for i in members}) > 1:
            conflict[members] = True
    return conflict, len(groups)


def queue_accuracy(order: np.ndarray, flipped: np.ndarray, budgets: tuple[float, ...]) -> dict[str, float]:
    """Label accuracy after an exact reviewer fixed the flips among the first share of ``order``, per budget."""
    n = len(flipped)
    found = np.cumsum(flipped[order])
    return {str(b): float(1 - flipped.mean() + found[max(0, int(round(b * n)) - 1)] / n) for b in budgets}


def smallest_share(order: np.ndarray, flipped: np.ndarray, target: float = 0.98) -> float | None:
    """The smallest reviewed share that reaches ``target`` label accuracy (None: not even with every face reviewed)."""
    n = len(flipped)
    accuracy = 1 - flipped.mean() + np.cumsum(flipped[order]) / n
    hit = np.flatnonzero(accuracy >= target - 1e-12)
    return float((hit[0] + 1) / n) if len(hit) else None


def cleanlab_quality(given: np.ndarray, probs: np.ndarray, method: str, adjust: bool = False) -> np.ndarray:
    """cleanlab's label-quality score (higher = likelier right) over the classes the labels use, as `curate errors` does."""
    from cleanlab.rank import get_label_quality_scores

    present = np.unique(given)
    p = probs[:, present] / np.clip(probs[:, present].sum(1, keepdims=True), 1e-12, None)
    y = np.searchsorted(present, given)
    return np.asarray(get_label_quality_scores(y, p, method=method, adjust_pred_probs=adjust), float)


def signal_orders(probs: np.ndarray, given: np.ndarray, knn: np.ndarray, conflict: np.ndarray, temperature: float,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Each signal's queue: indices, likeliest error first."""
    from bench._data import review_candidates
    from curate.review.routing import route

    n = len(given)
    p_given = probs[np.arange(n), given]
    knn_given = knn[np.arange(n), given]
    margin = cleanlab_quality(given, probs, "normalized_margin")
    scores = {"oof": 1 - p_given, "knn": 1 - knn_given + 1e-6 * (1 - p_given), "oof+knn": 1 - 0.5 * (p_given + knn_given),
              "duplicates": (1 - p_given) + conflict.astype(float), "margin": 1 - margin,
              "entropy": 1 - cleanlab_quality(given, probs, "confidence_weighted_entropy"),
              "oof_adjusted": 1 - cleanlab_quality(given, probs, "self_confidence", adjust=True)}
    orders = {name: np.argsort(-score, kind="stable") for name, score in scores.items()}

    def shipped(cands: list, tail: np.ndarray) -> np.ndarray:
        """`review push --routing likelihood` over ``cands``; faces it never queues follow, ordered by ``tail``."""
        routed = [int(r.uid) for r in route(cands, 0.9)]
        rest = np.setdiff1d(np.arange(n), routed)
        return np.r_[np.array(routed, int), rest[np.argsort(-tail[rest], kind="stable")]]

    cands, found = review_candidates(given, probs, temperature)
    orders["curate"] = shipped(cands, 1 - p_given)
    both = 0.5 * (found.quality + knn_given)  # cleanlab's flags, ranked by the out-of-fold and the neighbours' view together
    orders["curate+knn"] = shipped([dataclasses.replace(c, label_quality=float(q)) for c, q in zip(cands, both)], scores["oof+knn"])
    orders["curate+margin"] = shipped([dataclasses.replace(c, label_quality=float(q)) for c, q in zip(cands, margin)], 1 - margin)
    orders["random"] = np.random.default_rng(seed).permutation(n)
    return orders


def main() -> None:
    import json

    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.manifest import Row
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probs", type=Path, required=True, help="An .npz from `bench/cpu_teacher.py --noise` (given labels, flips).")
    parser.add_argument("--teacher", type=Path, required=True, help="That run's teacher.safetensors (for the embeddings).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--temperature", type=float, default=None, help="Default: the teacher's own (its sidecar).")
    args = parser.parse_args()
    started = time.perf_counter()
    z = np.load(args.probs)
    if "given" not in z.files:
        sys.exit(f"error: {args.probs}: no given labels; make it with `python bench/cpu_teacher.py --noise confusable`")
    where = {p.name: p for p in (args.data / "train").rglob("*.jpg")}
    uids = [str(u) for u in z["uids"]]
    missing = [u for u in uids if u not in where]
    if missing:
        sys.exit(f"error: {args.probs}: {len(missing)} faces are not under {args.data / 'train'} (first: {missing[0]})")
    probs, flipped = np.asarray(z["probs"], np.float64), np.asarray(z["flipped"], bool)
    given = np.array([EMOTIONS.index(str(g)) for g in z["given"]])
    model, sidecar = load_checkpoint(args.teacher)
    temperature = args.temperature if args.temperature is not None else float(sidecar.get("temperature", 1.0))
    rows = [Row(u, str(where[u]), EMOTIONS[g], "train") for u, g in zip(uids, given)]
    _, embeddings = predict(model, rows, sidecar["classes"], Preprocess.from_dict(sidecar["preprocess"]), 256, "cpu")
    knn = knn_label_share(embeddings, given, len(EMOTIONS))
    conflict, groups = duplicate_conflicts([where[u] for u in uids], given)
    orders = signal_orders(probs, given, knn, conflict, temperature)
    summary = {
        "faces": len(uids), "noise": str(z["noise"]) if "noise" in z.files else None, "flipped_share": float(flipped.mean()),
        "oof_accuracy_on_given": float((probs.argmax(1) == given).mean()), "temperature": temperature, "neighbours": NEIGHBOURS,
        "duplicate_groups": groups, "faces_in_conflicting_groups": int(conflict.sum()),
        "flipped_share_in_conflicting_groups": float(flipped[conflict].mean()) if conflict.any() else None,
        "budgets": list(BUDGETS), "probs": str(args.probs), "teacher": str(args.teacher),
        "signals": {name: {"accuracy_by_budget": queue_accuracy(order, flipped, BUDGETS), "min_reviewed_share_for_98": smallest_share(order, flipped)}
                    for name, order in orders.items()},
    }
    summary["minutes"] = round((time.perf_counter() - started) / 60, 1)
    from bench._results import write_section

    write_section(section_name(summary), markdown(summary), summary)
    print(json.dumps(summary["signals"], indent=1))


def section_name(summary: dict) -> str:
    """One section per noise kind the teacher learned (each has its own teacher); confusable came first and keeps the plain name."""
    return "signals" if summary["noise"] in (None, "confusable") else f"signals-{summary['noise']}"


def markdown(summary: dict) -> str:
    budgets = summary["budgets"]
    lines = ["## Routing signals (bench/signals.py)\n",
             f"{summary['faces']} FER2013 train faces, {100 * summary['flipped_share']:.0f} % of their labels flipped "
             f"({summary['noise']}) before the teacher (`{summary['teacher']}`) learned from them; its out-of-fold accuracy on the given "
             f"labels {100 * summary['oof_accuracy_on_given']:.1f} %. Cells: label accuracy % after an exact reviewer fixed what the "
             f"first share of each queue holds (the figure bench/curation.py reads from the ledger for an exact reviewer). "
             f"{summary['duplicate_groups']} duplicate groups; {summary['faces_in_conflicting_groups']} faces sit in one that holds two "
             f"labels. {summary['minutes']} min.\n",
             *budget_table_header("signal", budgets, "smallest share reaching 98 %")]
    for name, row in summary["signals"].items():
        best = row["min_reviewed_share_for_98"]
        lines.append(f"| {name} | " + " | ".join(f"{100 * row['accuracy_by_budget'][str(b)]:.1f}" for b in budgets)
                     + f" | {'%.0f %%' % (100 * best) if best is not None else 'not reached'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
