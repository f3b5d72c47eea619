"""bench/signals.py's arithmetic on constructed data: neighbours' labels, queue accuracy, and each signal's order."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO))
from bench import signals  # noqa: E402


def test_knn_label_share_counts_the_neighbours_labels_not_the_face_itself() -> None:
    emb = np.array([[1.0, 0.0], [0.99, 0.1], [0.98, 0.12], [0.0, 1.0], [0.1, 0.99], [0.12, 0.98]])
    labels = np.array([0, 0, 1, 2, 2, 2])
    share = signals.knn_label_share(emb, labels, 3, k=2)
    assert share[0].tolist() == [0.5, 0.5, 0.0], "face 0's two neighbours: face 1 (label 0) and face 2 (label 1)"
    assert share[3].tolist() == [0.0, 0.0, 1.0]
    assert np.allclose(share.sum(1), 1.0)


def test_queue_accuracy_and_the_smallest_share_follow_the_flips_a_queue_reaches() -> None:
    flipped = np.array([False] * 8 + [True, True])  # 20 % noise
    best, worst = np.array([8, 9, *range(8)]), np.arange(10)
    assert signals.queue_accuracy(best, flipped, (0.1, 0.2))["0.2"] == pytest.approx(1.0)
    assert signals.queue_accuracy(worst, flipped, (0.1, 0.5))["0.5"] == pytest.approx(0.8)
    assert signals.smallest_share(best, flipped) == pytest.approx(0.2)
    assert signals.smallest_share(worst, flipped) == pytest.approx(1.0)


def test_each_signal_orders_by_its_own_evidence() -> None:
    from curate.taxonomy import EMOTIONS

    rng = np.random.default_rng(0)
    n, k = 200, len(EMOTIONS)
    given = rng.integers(0, 7, n)
    probs = rng.dirichlet(np.ones(k), n)
    probs[0] = 1e-3
    probs[0, (given[0] + 1) % 7] = 1 - 7e-3  # face 0: the teacher is sure its label is wrong
    probs /= probs.sum(1, keepdims=True)
    knn = np.full((n, k), 1.0 / k)
    knn[1] = 0
    knn[1, (given[1] + 1) % 7] = 1.0  # face 1: none of its neighbours share its label
    conflict = np.zeros(n, bool)
    conflict[2] = True  # face 2: a duplicate carries another label
    orders = signals.signal_orders(probs, given, knn, conflict, temperature=1.0)
    assert orders["oof"][0] == 0 and orders["knn"][0] == 1 and orders["duplicates"][0] == 2
    assert orders["margin"][0] == 0 and orders["curate+margin"][0] == 0
    adjusted = signals.cleanlab_quality(given, probs, "self_confidence", adjust=True)
    assert adjusted[orders["oof_adjusted"][0]] == adjusted.min() and adjusted[0] < np.median(adjusted), "cleanlab's class-adjusted score"
    assert orders["curate"][0] == 0, "the shipped routing starts with cleanlab's surest flag"
    for order in orders.values():
        assert sorted(order.tolist()) == list(range(n)), "every queue is an order over all faces"


def test_each_noise_kind_keeps_its_own_results_section() -> None:
    assert signals.section_name({"noise": "confusable"}) == "signals"
    assert signals.section_name({"noise": "uniform"}) == "signals-uniform", "a uniform run must not overwrite the confusable table"
