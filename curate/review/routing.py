"""Who gets reviewed, and in which order. Pure functions over plain records, so they are easy to test.

A sample is routed when the teacher is unsure (calibrated confidence below the threshold) or when
cleanlab flags its label as a likely error. Ordering has two goals that pull apart:

- the most likely label errors first, because review time is the scarce resource;
- rare classes are not starved: FER data is dominated by happy and neutral, and a queue sorted
  only by error likelihood would spend a short review budget on those.

So candidates are dealt round-robin over classes (the current label, else the model's), each class
in order of error likelihood, and within one round the likelier errors come first. With a limit of
N and k classes, every class with candidates gets about N/k places.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

__all__ = ["Candidate", "Routed", "error_likelihood", "route"]


@dataclass(frozen=True)
class Candidate:
    uid: str
    label: str | None  # the current label (None: unlabeled)
    model_label: str | None
    confidence: float | None  # calibrated teacher confidence in model_label
    label_issue: bool = False  # cleanlab: the current label is likely wrong
    label_quality: float | None = None  # cleanlab self-confidence: P(current label) out of fold


@dataclass(frozen=True)
class Routed:
    uid: str
    reason: str  # "low_confidence", "label_issue" or both joined by "+"
    priority: float  # higher = review sooner; label issues are in [1, 2], others in [0, 1]
    group: str  # the class whose round-robin queue it came from


def error_likelihood(c: Candidate) -> float:
    """How likely the current label is wrong, from the best evidence there is.

    Out-of-fold self-confidence (cleanlab) beats the teacher's in-sample view. Without it: a teacher
    that disagrees with confidence p says the label is wrong with about p; one that agrees says 1 - p.
    Unlabeled samples rank by the teacher's uncertainty."""
    if c.label_quality is not None:
        return 1.0 - c.label_quality
    if c.confidence is None:
        return 0.5
    if c.label is not None and c.model_label is not None and c.model_label != c.label:
        return c.confidence
    return 1.0 - c.confidence


def _reason(c: Candidate, threshold: float) -> str | None:
    reasons = []
    if c.confidence is not None and c.confidence < threshold:
        reasons.append("low_confidence")
    if c.label_issue:
        reasons.append("label_issue")
    return "+".join(reasons) or None


def route(candidates: list[Candidate], threshold: float, exclude: set[str] = frozenset(), limit: int | None = None) -> list[Routed]:
    """The review queue: routed candidates not in ``exclude``, fairly ordered, at most ``limit``."""
    queues: dict[str, list[Routed]] = defaultdict(list)
    for c in candidates:
        if c.uid in exclude:
            continue
        reason = _reason(c, threshold)
        if reason is None:
            continue
        group = c.label or c.model_label or "unlabeled"
        queues[group].append(Routed(c.uid, reason, error_likelihood(c) + (1.0 if c.label_issue else 0.0), group))
    dealt: list[tuple[int, float, str, Routed]] = []
    for group, queue in queues.items():
        queue.sort(key=lambda r: (-r.priority, r.uid))
        dealt.extend((rank, -r.priority, r.uid, r) for rank, r in enumerate(queue))
    dealt.sort(key=lambda t: t[:3])
    ordered = [t[3] for t in dealt]
    return ordered[:limit] if limit is not None else ordered
