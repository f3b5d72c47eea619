"""Out-of-fold (OOF) predicted probabilities: what cleanlab needs to find label errors.

Every labeled sample gets probabilities from a model that never trained on it.
- ``cross`` (curate/models/teacher.py): the teacher *is* K fold models, each predicting the
  fold it never saw; their mean predicts the rest. Cost: K-1 trainings' worth of images (1x at K = 2).
- ``linear``: a frozen backbone that never saw this dataset (pretrained ``--weights``)
  embeds every sample once, then a K-fold logistic-regression head predicts each fold.
  Cost: one forward pass + seconds of sklearn. Without pretrained weights it is refused,
  because a backbone trained on these samples would leak their labels into the OOF.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["stratified_folds", "oof_linear"]


def stratified_folds(labels: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold id (0..k-1) per sample; classes spread evenly over folds."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), np.int64)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    offset = 0
    for label in sorted(by_class):
        idx = np.array(by_class[label])
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return folds


def oof_linear(embeddings: np.ndarray, labels: Sequence[str], classes: Sequence[str], k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K-fold logistic regression on frozen embeddings -> (probs (N, C) over ``classes``, fold ids)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    folds = stratified_folds(labels, k, seed)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in labels])
    probs = np.zeros((len(labels), len(classes)), np.float32)
    for fold in range(k):
        held, train = folds == fold, folds != fold
        scaler = StandardScaler().fit(embeddings[train])
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(scaler.transform(embeddings[train]), y[train])
        probs[np.ix_(held, clf.classes_)] = clf.predict_proba(scaler.transform(embeddings[held]))
    return probs, folds
