"""The teacher's view of faces under review: what CROWDLAB (review pull) and ActiveLab (review push) weigh the
annotators' answers against. Its own module because both commands need it and neither should import the other."""

from __future__ import annotations

from typing import Any

__all__ = ["teacher_probabilities"]


def teacher_probabilities(dataset: str, uids: list[str]) -> dict[str, Any]:
    """uid -> the teacher's probabilities (EMOTIONS order) for CROWDLAB and ActiveLab: out-of-fold where the teacher trained on the face
    (``prelabel_oof``: a teacher must not vouch for a label it learned), else its pre-label probabilities."""
    import numpy as np

    from curate.models.calibrate import softmax
    from curate.store import fo_store

    ds = fo_store.load_dataset(dataset, create=False)
    schema = ds.get_field_schema()
    view = ds.select_by("sample_uid", uids)
    found = view.values("sample_uid")
    oof = view.values("prelabel_oof") if "prelabel_oof" in schema else [None] * len(found)
    logits = view.values("prelabel.logits") if "prelabel" in schema else [None] * len(found)
    out: dict[str, Any] = {}
    for uid, p, z in zip(found, oof, logits):
        if p is not None:
            out[uid] = np.asarray(p, np.float64)
        elif z is not None:
            out[uid] = softmax(np.asarray(z, np.float64)[None])[0]
    return out
