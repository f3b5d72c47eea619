"""Who gets reviewed, and in which order. Pure functions over plain records, so they are easy to test.

A sample is routed when the teacher is unsure (calibrated confidence below the threshold) or when
cleanlab flags its label as a likely error. The default order (``likelihood``) puts the likeliest
label errors first, because review time is the scarce resource: an out-of-fold cleanlab flag first,
then the teacher's view of how likely the current label is wrong.

``balanced`` deals the same candidates round-robin over classes (the current label, else the
model's), each class in order of error likelihood, so a short budget also reaches rare classes. It
was the default until bench/curation.py measured it (1,000 FER2013 faces through Label Studio, a
59 % teacher): it never beat ``likelihood`` and lost up to 4.5 points of label accuracy at 50-70 %
reviewed, because FER's errors are not spread evenly over classes. It stays for teams that want
every class seen early.

The other strategies exist so they can be measured against these (bench/curation.py) and chosen with
``curate review push --routing``: ``confidence`` (teacher confidence below the threshold, lowest
first), ``label_issues`` (cleanlab's flags only, worst first) and ``random`` (every face, seeded order).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

__all__ = ["Candidate", "Routed", "error_likelihood", "route", "STRATEGIES", "DEFAULT_STRATEGY", "SECOND_OPINIONS"]

STRATEGIES = ("likelihood", "balanced", "confidence", "label_issues", "random")
DEFAULT_STRATEGY = "likelihood"
# Who answers a task when several people review (curate/review/push.py): everyone asked, or ActiveLab's pick.
SECOND_OPINIONS = ("all", "activelab")


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


def _seeded_rank(uid: str, seed: int) -> str:
    """A random but reproducible order that does not depend on the order samples are listed in."""
    return hashlib.sha256(f"{seed}:{uid}".encode()).hexdigest()


def _ranked(candidates: list[Candidate], threshold: float, strategy: str, seed: int) -> list[Routed]:
    """The single-list strategies, best first."""
    routed: list[tuple[object, Routed]] = []
    for c in candidates:
        group = c.label or c.model_label or "unlabeled"
        if strategy == "random":
            routed.append((_seeded_rank(c.uid, seed), Routed(c.uid, "random", 0.0, group)))
        elif strategy == "confidence" and c.confidence is not None and c.confidence < threshold:
            routed.append(((c.confidence, c.uid), Routed(c.uid, "low_confidence", 1.0 - c.confidence, group)))
        elif strategy == "label_issues" and c.label_issue:
            quality = c.label_quality if c.label_quality is not None else 0.0
            routed.append(((quality, c.uid), Routed(c.uid, "label_issue", 2.0 - quality, group)))
        elif strategy == "likelihood" and (reason := _reason(c, threshold)) is not None:
            priority = error_likelihood(c) + (1.0 if c.label_issue else 0.0)
            routed.append(((-priority, c.uid), Routed(c.uid, reason, priority, group)))
    routed.sort(key=lambda t: t[0])
    return [r for _, r in routed]


def route(candidates: list[Candidate], threshold: float, exclude: set[str] = frozenset(), limit: int | None = None,
          strategy: str = DEFAULT_STRATEGY, seed: int = 0) -> list[Routed]:
    """The review queue: routed candidates not in ``exclude``, in ``strategy``'s order, at most ``limit``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown routing {strategy!r}; one of {', '.join(STRATEGIES)}")
    candidates = [c for c in candidates if c.uid not in exclude]
    if strategy != "balanced":
        ordered = _ranked(candidates, threshold, strategy, seed)
        return ordered[:limit] if limit is not None else ordered
    queues: dict[str, list[Routed]] = defaultdict(list)
    for c in candidates:
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
