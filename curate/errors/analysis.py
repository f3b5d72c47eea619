"""Pure functions over arrays: which labels look wrong, and how the wrong ones group.

No FiftyOne here (see ``curate.errors.stage``), so every rule is testable on constructed data.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["LabelIssues", "label_issues", "ErrorCluster", "cluster_errors", "view_name"]


@dataclass
class LabelIssues:
    is_issue: np.ndarray  # bool (N,)
    quality: np.ndarray  # float (N,), low = likely wrong (cleanlab self-confidence)
    suggested: np.ndarray  # int (N,), argmax of the out-of-fold probabilities


def label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> LabelIssues:
    """cleanlab's confident-learning filter on out-of-fold probabilities.

    Classes that never occur in ``labels`` (FER2013 has no contempt) are dropped from the
    probability matrix first: cleanlab needs every column to be a class it can estimate.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    present = np.unique(labels)
    remap = {c: i for i, c in enumerate(present)}
    probs = pred_probs[:, present]
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    y = np.array([remap[c] for c in labels])
    issues = find_label_issues(y, probs, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    return LabelIssues(np.asarray(issues, bool), np.asarray(quality, float), present[probs.argmax(1)])


@dataclass
class ErrorCluster:
    cluster: int
    members: list[int]  # indices into the error subset's source arrays
    true_label: str
    predicted_label: str
    confusion_share: float  # fraction of members with the dominant (true, predicted) pair
    view: str


def view_name(true_label: str, predicted_label: str, taken: set[str]) -> str:
    """``errors-fear-as-surprise``; a numeric suffix keeps names unique."""
    base = f"errors-{true_label}-as-{predicted_label}"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


def cluster_errors(embeddings: np.ndarray, true: Sequence[str], predicted: Sequence[str], k: int | None = None, seed: int = 0,
                   max_k: int = 8) -> list[ErrorCluster]:
    """k-means on L2-normalized embeddings of the error samples; k by silhouette when not given."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(embeddings)
    if n == 0:
        return []
    x = embeddings / np.clip(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12, None)
    if k is None:
        best, k = -2.0, 1
        for candidate in range(2, min(max_k, n - 1) + 1):
            labels = KMeans(candidate, n_init=4, random_state=seed).fit_predict(x)
            if len(set(labels)) < 2:
                continue
            score = silhouette_score(x, labels, random_state=seed)
            if score > best:
                best, k = score, candidate
    assignment = KMeans(k, n_init=4, random_state=seed).fit_predict(x) if k > 1 else np.zeros(n, int)
    taken: set[str] = set()
    clusters = []
    for c in sorted(set(assignment.tolist()), key=lambda c: -int((assignment == c).sum())):
        members = np.flatnonzero(assignment == c).tolist()
        (t, p), count = collections.Counter((true[i], predicted[i]) for i in members).most_common(1)[0]
        clusters.append(ErrorCluster(len(clusters), members, t, p, count / len(members), view_name(t, p, taken)))
    return clusters
