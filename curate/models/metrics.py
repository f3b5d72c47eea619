"""Classification metrics recorded with every checkpoint."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["classification_metrics"]


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

    labels = list(range(len(classes)))
    present = sorted(set(y_true.tolist()))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        # Macro-F1 over the classes present in the evaluation set (FER2013 has no contempt).
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if len(y_true) else 0.0,
        "per_class_recall": {classes[i]: float(recall[i]) for i in present},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
