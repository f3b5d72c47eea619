"""Out-of-fold (OOF) predicted probabilities: what cleanlab needs to find label errors.

Every labeled sample gets probabilities from a model that never trained on it.
- ``full``: K models, each fine-tuned on K-1 folds, predicts its held-out fold. Cost: K
  trainings (K x the teacher's own training time).
- ``linear``: a frozen backbone that never saw this dataset (pretrained ``--weights``)
  embeds every sample once, then a K-fold logistic-regression head predicts each fold.
  Cost: one forward pass + seconds of sklearn. Without pretrained weights it is refused,
  because a backbone trained on these samples would leak their labels into the OOF.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from curate.models.manifest import Row

__all__ = ["stratified_folds", "oof_full", "oof_linear"]


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


def oof_full(rows: Sequence[Row], classes: Sequence[str], cfg, k: int,  # noqa: ANN001
             on_fold: Callable[[int, list[int], list[int]], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probs (N, C), fold ids). ``on_fold(k, train_idx, held_idx)`` lets callers audit the split."""
    from curate.models.calibrate import softmax
    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess
    from curate.models.train import train_model

    folds = stratified_folds([r.label for r in rows], k, cfg.seed)
    probs = np.zeros((len(rows), len(classes)), np.float32)
    for fold in range(k):
        held = [i for i in range(len(rows)) if folds[i] == fold]
        train = [i for i in range(len(rows)) if folds[i] != fold]
        if on_fold:
            on_fold(fold, train, held)
        result = train_model([rows[i] for i in train], [], classes, cfg)
        logits, _ = predict(result.model, [rows[i] for i in held], classes, Preprocess(cfg.image_size), cfg.batch_size, cfg.device, cfg.workers)
        probs[held] = softmax(logits)
    return probs, folds


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
