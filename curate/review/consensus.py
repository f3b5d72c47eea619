"""Consensus across annotators with cleanlab's CROWDLAB: each annotator weighed by how often they agree with the others
and with the teacher, and the teacher's probabilities weighed by how often they agree with the annotators.

Why not the plain majority (curate/review/decide.py, still the first step): with two annotators a disagreement is a
tie, so the face keeps its old label however sure the teacher and the more reliable annotator are; with three, a
careless annotator counts as much as a careful one. CROWDLAB (Goh, Tkachenko and Mueller 2022) estimates each
annotator's quality from every task they share with others and decides each face from the annotators' answers and the
teacher together, with a consensus quality score. It needs at least two annotators and one task answered twice;
before that the majority decides alone.

Which answered faces deserve one more annotator is ActiveLab's call (Goh, Mueller 2023; :func:`second_opinions`): it
scores answered and unanswered faces on one scale (how sure we are of the true label given the answers so far, the
annotators' estimated quality and the teacher's probabilities), so a push can spend each task either on a new face or
on a second look at an answered one, whichever is worth more.

Only emotions enter the matrix: "not a face" and "unclear" have no teacher probability and are decided by the majority
(a face two people call "not a face" leaves the working set whatever the teacher thinks).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Hashable, Mapping

import numpy as np

from curate.taxonomy import EMOTIONS

__all__ = ["CrowdConsensus", "crowdlab", "second_opinions"]


@dataclass(frozen=True)
class CrowdConsensus:
    labels: dict[Hashable, str]  # task -> consensus emotion (tasks with two or more emotion answers)
    quality: dict[Hashable, float]  # task -> CROWDLAB consensus quality score in [0, 1]
    annotator_quality: dict[str, float] = field(default_factory=dict)  # annotator -> CROWDLAB annotator quality
    annotator_tasks: dict[str, int] = field(default_factory=dict)  # annotator -> tasks answered


def crowdlab(answers: Mapping[Hashable, Mapping[str, str]], probs: Mapping[Hashable, np.ndarray]) -> CrowdConsensus | None:
    """Consensus for every task with two or more emotion answers, from ``answers`` (task -> {annotator: emotion}) and the
    teacher's ``probs`` (task -> probabilities in EMOTIONS order). None: CROWDLAB cannot run yet (fewer than two
    annotators, or no task that two of them answered with an emotion)."""
    answered = _answered(answers, probs)
    if len({a for given in answered.values() for a in given}) < 2 or not any(len(given) >= 2 for given in answered.values()):
        return None
    tasks, matrix, pred = _cleanlab_inputs(answered, probs)
    from cleanlab.multiannotator import get_label_quality_multiannotator

    with warnings.catch_warnings():  # "annotators do not agree on any example" and friends: the result says as much
        warnings.simplefilter("ignore")
        result = get_label_quality_multiannotator(matrix, pred, consensus_method="best_quality", quality_method="crowdlab", verbose=False,
                                                  return_detailed_quality=False)
    quality, stats = result["label_quality"], result["annotator_stats"]
    multi = [row for row, t in enumerate(tasks) if len(answered[t]) >= 2]
    return CrowdConsensus(
        labels={tasks[row]: EMOTIONS[int(quality["consensus_label"].iloc[row])] for row in multi},
        quality={tasks[row]: float(quality["consensus_quality_score"].iloc[row]) for row in multi},
        annotator_quality={str(a): round(float(q), 4) for a, q in stats["annotator_quality"].items()},
        annotator_tasks={str(a): int(n) for a, n in stats["num_examples_labeled"].items()},
    )


def second_opinions(answers: Mapping[Hashable, Mapping[str, str]], probs: Mapping[Hashable, np.ndarray], new_probs: np.ndarray,
                    budget: int) -> list[Hashable]:
    """The answered tasks that get one more annotator, lowest ActiveLab score first: those among the ``budget`` lowest
    scores of all faces, answered (``answers``: task -> {annotator: answer}, with the teacher's ``probs`` per task) and
    new (``new_probs``: the teacher's probabilities of the faces the push would send next, one row each).

    Why one scale: a task spent on a second opinion is a task not spent on a new face; ActiveLab's scores for labeled and
    unlabeled faces are comparable by design, so the lowest ``budget`` of them together are the most informative batch.
    Tasks without an emotion answer (skipped, "not a face", "unclear") are never picked."""
    answered = _answered(answers, probs)
    if not answered or budget <= 0:
        return []
    tasks, matrix, pred = _cleanlab_inputs(answered, probs)
    unlabeled = _normalized(np.asarray(new_probs, np.float64).reshape(-1, len(EMOTIONS))) if len(new_probs) else None
    from cleanlab.multiannotator import get_active_learning_scores

    # One annotator, or classes nobody chose: ActiveLab falls back and says so, by warnings and by print (kept off stdout,
    # where a --json summary goes).
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        scores, new_scores = get_active_learning_scores(matrix, pred, unlabeled)
    pooled = sorted([(float(s), 0, row) for row, s in enumerate(scores)] + [(float(s), 1, row) for row, s in enumerate(new_scores if unlabeled is not None else [])])
    return [tasks[row] for _, is_new, row in pooled[:budget] if not is_new]


def _answered(answers: Mapping[Hashable, Mapping[str, str]], probs: Mapping[Hashable, np.ndarray]) -> dict[Hashable, dict[str, str]]:
    """task -> {annotator: emotion} for the tasks with a teacher probability and at least one emotion answer (a skip,
    "not a face" or "unclear" is no emotion to weigh)."""
    emotions = {t: {a: e for a, e in given.items() if e in EMOTIONS} for t, given in answers.items() if t in probs}
    return {t: given for t, given in emotions.items() if given}


def _cleanlab_inputs(answered: dict[Hashable, dict[str, str]], probs: Mapping[Hashable, np.ndarray]):  # noqa: ANN202
    """(tasks, the tasks x annotators matrix of class indices with NaN where one did not answer, the teacher's
    probabilities in the same row order): what cleanlab.multiannotator takes."""
    import pandas as pd

    tasks = list(answered)
    matrix = pd.DataFrame(np.nan, index=range(len(tasks)), columns=sorted({a for given in answered.values() for a in given}))
    for row, t in enumerate(tasks):
        for annotator, emotion in answered[t].items():
            matrix.loc[row, annotator] = EMOTIONS.index(emotion)
    return tasks, matrix, _normalized(np.stack([np.asarray(probs[t], np.float64) for t in tasks]))


def _normalized(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, None)
    return p / p.sum(1, keepdims=True)
