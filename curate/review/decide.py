"""From a task's annotations to one decision. Pure, so every rule below has a direct test.

- Each annotator counts once, with their latest annotation (an edit replaces their earlier answer).
- A skipped (cancelled) annotation is no vote. A task whose annotators all skipped is ``skipped``.
- The answer with the most votes wins: an emotion (the new label) or a removal ("not a face", "unclear":
  the face leaves the working set, ``removal`` names why). A tie is a ``conflict``: no label is decided here and the
  task is flagged in ``curate review status``. This is the first step only: once two people answered the same face,
  the pull asks CROWDLAB (curate/review/consensus.py), which decides ties and may overrule a majority.
- ``signature`` fingerprints every annotation (id, edit time, cancelled), so a pull can tell at once
  that nothing happened to a task since the previous pull.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from curate.review.project import chosen_answer
from curate.taxonomy import EMOTIONS

__all__ = ["Decision", "decide", "parse_time"]


@dataclass(frozen=True)
class Decision:
    state: str  # "done", "skipped", "conflict" or "pending" (nobody answered yet)
    label: str | None  # the decided emotion (None when the decision is a removal)
    votes: dict[str, int] = field(default_factory=dict)
    agreement: float | None = None  # share of votes for the winning (or tied-top) label
    voters: tuple[str, ...] = ()  # annotators who chose the decided label
    annotation_id: int | None = None  # the latest annotation that chose the decided label
    decided_at: dt.datetime | None = None
    signature: str = ""
    removal: str | None = None  # "not_a_face" or "unclear" when that answer won
    answers: dict[str, str] = field(default_factory=dict)  # annotator -> their latest answer (what CROWDLAB weighs)


def parse_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _annotator(annotation: Mapping[str, Any]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        return str(who.get("email") or who.get("id"))
    return f"user:{who}"


def decide(annotations: Sequence[Mapping[str, Any]]) -> Decision:
    signature = hashlib.sha256(
        "|".join(sorted(f"{a['id']}@{parse_time(a['updated_at']).isoformat()}:{bool(a.get('was_cancelled'))}" for a in annotations)).encode()
    ).hexdigest()[:32]
    latest: dict[str, Mapping[str, Any]] = {}
    for a in sorted(annotations, key=lambda a: (parse_time(a["updated_at"]), a["id"])):
        latest[_annotator(a)] = a
    answers = {who: chosen_answer(a.get("result")) for who, a in latest.items() if not a.get("was_cancelled")}
    answers = {who: label for who, label in answers.items() if label is not None}
    if not answers:
        skipped = any(a.get("was_cancelled") for a in latest.values())
        return Decision("skipped" if skipped else "pending", None, signature=signature)
    votes = Counter(answers.values())
    (top, top_n), *rest = votes.most_common()
    agreement = top_n / sum(votes.values())
    if rest and rest[0][1] == top_n:
        return Decision("conflict", None, dict(votes), agreement, signature=signature, answers=answers)
    voters = tuple(sorted(who for who, label in answers.items() if label == top))
    deciding = max((latest[w] for w in voters), key=lambda a: (parse_time(a["updated_at"]), a["id"]))
    label, removal = (top, None) if top in EMOTIONS else (None, top)
    return Decision("done", label, dict(votes), agreement, voters, int(deciding["id"]), parse_time(deciding["updated_at"]), signature, removal, answers)
