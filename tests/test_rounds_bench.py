"""bench/rounds.py's bookkeeping on constructed data: slices never repeat a face, re-ranking sees corrected labels, and a
retrained teacher's view routes the next slice (the training itself is the product's fit_teacher, tested elsewhere)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO))
from bench import rounds  # noqa: E402


def _sample(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, given with 20 % flipped to the next class, flip mask)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 7, n)
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, n // 5, replace=False)] = True
    given = np.where(flipped, (truth + 1) % 7, truth)
    return truth, given, flipped


def _teacher(labels: np.ndarray, sure: float) -> rounds.Teacher:
    """A teacher that puts ``sure`` of its mass on ``labels`` (the rest spread evenly)."""
    from curate.taxonomy import EMOTIONS

    k = len(EMOTIONS)
    probs = np.full((len(labels), k), (1 - sure) / (k - 1))
    probs[np.arange(len(labels)), labels] = sure
    return rounds.Teacher(probs, 1.0, 0.0)


def test_spend_adds_only_unreviewed_faces_up_to_the_budget() -> None:
    assert rounds.spend(np.array([3, 1, 4, 2, 0]), [1], 3) == [1, 3, 4]
    assert rounds.spend(np.array([0, 1]), [0, 1], 5) == [0, 1], "nothing left to show"


def test_the_queue_leaves_out_reviewed_faces_and_starts_with_the_likeliest_flips() -> None:
    truth, given, flipped = _sample()
    order = rounds.queue(given, _teacher(truth, 0.9).probs, 1.0, exclude={0, 1, 2})
    assert sorted(order.tolist()) == list(range(3, len(given))), "every unreviewed face once, no reviewed one"
    head = order[:int(flipped[3:].sum())]
    assert flipped[head].mean() == pytest.approx(1.0), "a teacher that knows the truth queues exactly the flips first"


def test_rounds_with_a_retrain_use_the_new_teachers_view_for_the_next_slice() -> None:
    truth, given, flipped = _sample()
    blind = _teacher(given, 0.6)  # learned the flips: no evidence at all, so the first slice finds flips at random
    calls: list[tuple[int, np.ndarray]] = []

    def retrain(k: int, labels: np.ndarray) -> rounds.Teacher:
        calls.append((k, labels.copy()))
        return _teacher(truth, 0.9)  # the retrained teacher sees through the flips

    budgets = (0.1, 0.3)
    with_retrain, trained = rounds.run_rounds(truth, given, blind, budgets, retrain)
    rescored, none = rounds.run_rounds(truth, given, blind, budgets, None)
    assert [k for k, _ in calls] == [1] and len(trained) == 1 and none == []
    labels = calls[0][1]
    assert ((labels == truth) | (labels == given)).all() and (labels != given).sum() > 0, "the retrain saw the first slice's fixes"
    assert with_retrain[1] == pytest.approx(1.0), "after the retrain the 20 % left of the budget holds every remaining flip"
    assert rescored[1] < 1.0, "the blind teacher's order cannot find them all"
    assert with_retrain[0] == pytest.approx(rescored[0]), "both spend the first slice on the same queue"
    assert rounds.accuracy(truth, given, list(range(len(given)))) == 1.0 and rounds.accuracy(truth, given, []) == pytest.approx(1 - flipped.mean())


def test_the_table_shows_the_mean_over_seeds_and_each_seed_at_30_percent() -> None:
    def sample(seed: int, acc: float) -> dict:
        return {"seed": seed, "flipped_share": 0.2, "teacher_oof_accuracy_by_round": [0.43, 0.45],
                "strategies": {"one_shot": {"accuracy_by_budget": {"0.1": acc, "0.3": acc + 0.1}}}}

    samples = [sample(0, 0.80), sample(1, 0.84)]
    summary = {"faces": 100, "noise": "confusable", "budgets": [0.1, 0.3], "samples": samples, "minutes": 1.0,
               "mean": {"one_shot": {"accuracy_by_budget": {"0.1": 0.82, "0.3": 0.92}}}}
    row = next(line for line in rounds.markdown(summary).splitlines() if line.startswith("| one_shot"))
    assert row == "| one_shot | 82.0 | 92.0 | 90.0 / 94.0 |"
