"""What a reviewer sees: one Label Studio project per dataset, its labeling config and the task payload.

The config shows the face large, a context line (the dataset's label and the model's guess) and the
eight emotions as single-choice buttons with hotkeys 1-8, so a reviewer can keep one hand on the
keyboard. The model's guess is also attached as a pre-annotation, so accepting it is one click.

Two more buttons answer what an emotion cannot: "not a face" (hotkey 9: a cartoon, text, a blank or
cut-off frame) and "unclear" (hotkey 0: a face no emotion fits with any confidence). FER datasets hold
both, and forcing an emotion on them writes a wrong label; such a face leaves the working set instead,
with the reviewer and the reason on record (curate/review/pull.py).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from curate.taxonomy import EMOTIONS, REMOVAL_REASONS

__all__ = ["FROM_NAME", "TO_NAME", "REMOVAL_ANSWERS", "REMOVAL_REASONS", "project_title", "label_config", "choice_result", "chosen_label", "chosen_answer",
           "task_payload"]

#: Why a sample is in the queue, in the reviewer's words.
_WHY = {"low_confidence": "model unsure", "label_issue": "likely label error"}

FROM_NAME = "emotion"
TO_NAME = "image"


#: Answers beyond the emotions: the button a reviewer sees -> (hotkey, the reason code the face leaves the working set with).
#: The reason codes are curate.taxonomy.REMOVAL_REASONS, in its order (tests/test_review_logic.py checks it).
REMOVAL_ANSWERS = {"not a face": ("9", "not_a_face"), "unclear": ("0", "unclear")}

TITLE_MAX = 50  # Label Studio refuses longer project titles (HTTP 400)


def project_title(dataset: str) -> str:
    """The project of a dataset, found again by this title. Long names keep their start and gain a
    digest of the whole name, so two long names that share a start still get two projects."""
    title = f"curate: {dataset}"
    if len(title) <= TITLE_MAX:
        return title
    import hashlib

    digest = hashlib.sha256(dataset.encode()).hexdigest()[:8]
    return f"{title[:TITLE_MAX - len(digest) - 2]}~ {digest}"


def label_config() -> str:
    choices = "\n".join([*(f'    <Choice value={quoteattr(e)} hotkey="{i}"/>' for i, e in enumerate(EMOTIONS, start=1)),
                          *(f'    <Choice value={quoteattr(a)} hotkey="{key}"/>' for a, (key, _) in REMOVAL_ANSWERS.items())])
    return f"""<View>
  <Header value="$context" size="5"/>
  <Image name="{TO_NAME}" value="$image" zoom="true" maxWidth="480px"/>
  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single-radio" showInline="true" required="true">
{choices}
  </Choices>
</View>"""


def choice_result(label: str) -> list[dict[str, Any]]:
    """The result JSON of picking ``label`` (used for pre-annotations)."""
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}]


def chosen_answer(result: list[dict[str, Any]] | None) -> str | None:
    """What an annotation answered: an emotion, a removal reason code (``not_a_face``, ``unclear``), or None
    (empty, another control, an unknown value, or anything not shaped as Label Studio writes it).

    Every level is type-checked: the result comes from the server, where anyone with the project's token can write any
    JSON, and one answer of ``[["happy"]]`` used to raise in every pull (issue 42) instead of counting as no answer."""
    if not isinstance(result, list):
        return None
    for region in result:
        if not isinstance(region, dict) or region.get("from_name") != FROM_NAME or region.get("type") != "choices":
            continue
        value = region.get("value")
        picked = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(picked, list) or len(picked) != 1 or not isinstance(picked[0], str):
            continue
        if picked[0] in EMOTIONS:
            return picked[0]
        if picked[0] in REMOVAL_ANSWERS:
            return REMOVAL_ANSWERS[picked[0]][1]
    return None


def chosen_label(result: list[dict[str, Any]] | None) -> str | None:
    """The emotion picked in an annotation result, or None (no emotion: see :func:`chosen_answer`)."""
    answer = chosen_answer(result)
    return answer if answer in EMOTIONS else None


def task_payload(sample_uid: str, image_url: str, dataset_label: str | None, model_label: str | None, model_confidence: float | None,
                 reason: str, model_version: str) -> dict[str, Any]:
    """One importable task: data for the UI plus the model's guess as a prediction."""
    guess = f"{model_label} ({100 * model_confidence:.0f} %)" if model_label and model_confidence is not None else "none"
    why = ", ".join(_WHY.get(r, r) for r in reason.split("+"))
    task: dict[str, Any] = {
        "data": {
            "image": image_url,
            "sample_id": sample_uid,
            "dataset_label": dataset_label or "",
            "model_label": model_label or "",
            "reason": reason,
            "context": f"Dataset label: {dataset_label or 'none'} | Model: {guess} | Why: {why}",
        }
    }
    if model_label:
        task["predictions"] = [{"model_version": model_version, "score": float(model_confidence or 0.0), "result": choice_result(model_label)}]
    return task
