"""Paired comparison of two classifiers on the same samples: McNemar's exact test and per-class deltas."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["mcnemar", "per_class_recall_delta"]


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, alpha: float = 0.05) -> dict:
    """Exact McNemar: a two-sided binomial test on the discordant pairs (valid at any sample size)."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    p = float(binomtest(only_a, n, 0.5).pvalue) if n else 1.0
    better = "A" if only_a > only_b else "B" if only_b > only_a else "tie"
    return {"n": int(len(a)), "a_only_correct": only_a, "b_only_correct": only_b, "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
            "p_value": p, "significant": bool(n and p < alpha), "better": better, "alpha": alpha}


def per_class_recall_delta(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    out = {}
    for i, c in enumerate(classes):
        mask = y == i
        if mask.any():
            ra, rb = float((pred_a[mask] == i).mean()), float((pred_b[mask] == i).mean())
            out[c] = {"recall_a": ra, "recall_b": rb, "delta_b_minus_a": rb - ra, "n": int(mask.sum())}
    return out
