"""`curate errors`: label issues, checkpoint mistakes and clusters of both, written to FiftyOne as fields and views.

Fields: ``label_issue`` (bool), ``label_quality`` (cleanlab self-confidence), ``suggested_label``
(fo.Classification), ``mistake`` (bool) and ``checkpoint_pred`` (fo.Classification) on val/test
samples when a checkpoint is given, ``error_cluster`` (int). Views: ``label_issues`` (worst
first), ``mistakes``, and one ``errors-<true>-as-<predicted>`` per cluster. A fiftyone.brain
visualization of the embeddings (brain key ``curate_embeddings``) lets the App's Embeddings
panel colour points by label, cluster and issue.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import numpy as np

from curate.exceptions import CurateError
from curate.taxonomy import EMOTIONS

__all__ = ["analyze_errors", "BRAIN_KEY"]

BRAIN_KEY = "curate_embeddings"


def _checkpoint_mistakes(ds, url: str, checkpoint: Path) -> dict[str, tuple[bool, str, float]]:  # noqa: ANN001
    """uid -> (is mistake, predicted label, confidence) on labeled val/test samples of the working set."""
    from curate.models.calibrate import softmax
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.manifest import from_dataset
    from curate.models.preprocess import Preprocess

    rows = [r for r in from_dataset(ds.name, url, curated_only=True) if r.label and r.split in ("val", "test")]
    if not rows:
        return {}
    model, side = load_checkpoint(checkpoint)
    logits, _ = predict(model, rows, side["classes"], Preprocess.from_dict(side["preprocess"]))
    probs = softmax(logits, float(side.get("temperature", 1.0)))
    pred = [side["classes"][i] for i in probs.argmax(1)]
    return {r.uid: (p != r.label, p, float(c)) for r, p, c in zip(rows, pred, probs.max(1))}


def analyze_errors(dataset: str, url: str, checkpoint: Path | None = None, k: int | None = None, viz_method: str = "pca",
                   visualize: bool = True) -> dict[str, Any]:
    from curate.errors.analysis import cluster_errors, label_issues
    from curate.errors.trust import probability_quality, warning
    from curate.store import fo_store

    started = time.monotonic()
    f = fo_store.fo()
    from fiftyone import ViewField as F

    ds = fo_store.load_dataset(dataset, create=False)
    schema = ds.get_field_schema()
    if "prelabel_oof" not in schema and checkpoint is None:
        raise CurateError(f"dataset {dataset!r}: no out-of-fold probabilities; run `curate teacher train` (or pass --checkpoint)")
    work = ds.load_saved_view("curated") if ds.has_saved_view("curated") else ds.view()
    fields = ["id", "sample_uid", "label.label"] + [n for n in ("prelabel_oof", "embedding", "blur", "occlusion") if n in schema]
    cols = dict(zip(fields, work.values(fields)))
    n = len(cols["id"])
    index = {c: i for i, c in enumerate(EMOTIONS)}

    # 1. label issues from out-of-fold probabilities
    issue = np.zeros(n, bool)
    suggested: list[str | None] = [None] * n
    quality: list[float | None] = [None] * n
    have = [i for i in range(n) if cols["label.label"][i] in index and cols.get("prelabel_oof", [None] * n)[i] is not None]
    quality_of_probs = probability_quality(np.array([index[cols["label.label"][i]] for i in have], dtype=int),
                                           np.array([cols["prelabel_oof"][i] for i in have]).reshape(len(have), len(EMOTIONS)), list(EMOTIONS))
    caution = warning(quality_of_probs, "label issues are not flagged") if have else None
    if have and quality_of_probs["trusted"]:
        found = label_issues(np.array([index[cols["label.label"][i]] for i in have]), np.array([cols["prelabel_oof"][i] for i in have]))
        for j, i in enumerate(have):
            issue[i], quality[i], suggested[i] = bool(found.is_issue[j]), float(found.quality[j]), EMOTIONS[int(found.suggested[j])]
    ids = cols["id"]
    if have:  # unlabeled faces have nothing for cleanlab to check (and FiftyOne cannot type a field from no values)
        ds.set_values("label_issue", {ids[i]: bool(issue[i]) for i in have}, key_field="id")
    if have and quality_of_probs["trusted"]:
        ds.set_values("label_quality", {ids[i]: quality[i] for i in have}, key_field="id")
        ds.set_values("suggested_label", {ids[i]: f.Classification(label=suggested[i]) for i in have}, key_field="id")
    else:  # untrusted probabilities: clear what an earlier run may have written, create nothing
        for stale in ("label_quality", "suggested_label"):
            if stale in schema:
                ds.set_values(stale, {ids[i]: None for i in have}, key_field="id")
    by_quality = (lambda view: view.sort_by("label_quality")) if "label_quality" in ds.get_field_schema() else (lambda view: view)

    # 2. mistakes of a checkpoint on val/test
    mistakes = _checkpoint_mistakes(ds, url, checkpoint) if checkpoint else {}
    by_uid = {u: i for i, u in enumerate(cols["sample_uid"])}
    if mistakes:
        ds.set_values("mistake", {ids[by_uid[u]]: m for u, (m, _, _) in mistakes.items()}, key_field="id")
        ds.set_values("checkpoint_pred", {ids[by_uid[u]]: f.Classification(label=p, confidence=c) for u, (_, p, c) in mistakes.items()},
                      key_field="id")

    # 3. clusters of all error samples in embedding space
    errors = [i for i in range(n) if issue[i] or mistakes.get(cols["sample_uid"][i], (False,))[0]]
    predicted = [mistakes[cols["sample_uid"][i]][1] if cols["sample_uid"][i] in mistakes and mistakes[cols["sample_uid"][i]][0]
                 else suggested[i] for i in errors]
    true = [cols["label.label"][i] for i in errors]
    clusters = []
    for name in [v for v in ds.list_saved_views() if v.startswith("errors-")]:
        ds.delete_saved_view(name)  # views of an earlier run describe clusters that no longer exist
    if "error_cluster" not in ds.get_field_schema():
        ds.add_sample_field("error_cluster", f.IntField)
    ds.set_values("error_cluster", [None] * len(ds))
    if errors and "embedding" in cols and all(cols["embedding"][i] is not None for i in errors):
        emb = np.stack([np.asarray(cols["embedding"][i], np.float32) for i in errors])
        clusters = cluster_errors(emb, true, predicted, k=k)
        ds.set_values("error_cluster", {ids[errors[m]]: c.cluster for c in clusters for m in c.members}, key_field="id")
        for c in clusters:
            ds.save_view(c.view, by_quality(ds.match(F("error_cluster") == c.cluster)), overwrite=True)
    ds.save_view("label_issues", by_quality(ds.match(F("label_issue") == True)), overwrite=True)  # noqa: E712
    if mistakes:
        ds.save_view("mistakes", ds.match(F("mistake") == True), overwrite=True)  # noqa: E712

    # 4. brain: embedding visualization and uniqueness from the stored embeddings (no downloads)
    brain = {}
    if visualize and "embedding" in schema and n >= 3:
        import fiftyone.brain as fob

        with_emb = work.exists("embedding")
        if ds.has_brain_run(BRAIN_KEY):
            ds.delete_brain_run(BRAIN_KEY)
        fob.compute_visualization(with_emb, embeddings="embedding", brain_key=BRAIN_KEY, method=viz_method, seed=0, progress=False)
        fob.compute_uniqueness(with_emb, embeddings="embedding", progress=False)
        brain = {"brain_key": BRAIN_KEY, "method": viz_method, "uniqueness_field": "uniqueness"}

    blur, occ = cols.get("blur", [None] * n), cols.get("occlusion", [None] * n)

    def mean(values: list) -> float | None:
        vals = [v for v in values if v is not None]
        return round(float(np.mean(vals)), 4) if vals else None

    return {
        "dataset": dataset,
        "samples": n,
        "with_oof": len(have),
        "probability_quality": quality_of_probs,
        "label_issues_flagged": bool(have) and quality_of_probs["trusted"],
        "warning": caution,
        "label_issues": int(issue.sum()),
        "mistakes": sum(1 for m, _, _ in mistakes.values() if m),
        "checked_by_checkpoint": len(mistakes),
        "errors": len(errors),
        "clusters": [{"cluster": c.cluster, "view": c.view, "size": len(c.members), "dominant": f"{c.true_label} -> {c.predicted_label}",
                      "dominant_share": round(c.confusion_share, 3), "mean_blur": mean([blur[errors[m]] for m in c.members]),
                      "mean_occlusion": mean([occ[errors[m]] for m in c.members])} for c in clusters],
        "top_confusions": [{"true": t, "suggested": p, "count": c} for (t, p), c in
                           collections.Counter(zip(true, predicted)).most_common(5)],
        "brain": brain,
        "seconds": round(time.monotonic() - started, 1),
    }
