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
from dataclasses import dataclass
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


@dataclass
class _LabelIssues:
    """cleanlab's verdict on the working set's faces that have out-of-fold probabilities (``have``: their positions)."""

    have: list[int]
    issue: np.ndarray
    suggested: list[str | None]
    quality: list[float | None]
    probability_quality: dict[str, Any]
    warning: str | None

    @property
    def flagged(self) -> bool:
        return bool(self.have) and bool(self.probability_quality["trusted"])


def _read(dataset: str, checkpoint: Path | None) -> tuple[Any, Any, dict[str, Any], dict[str, list]]:
    """(dataset, working-set view, field schema, columns of the working set) from FiftyOne."""
    from curate.store import fo_store

    ds = fo_store.load_dataset(dataset, create=False)
    schema = ds.get_field_schema()
    if "prelabel_oof" not in schema and checkpoint is None:
        raise CurateError(f"dataset {dataset!r}: no out-of-fold probabilities; run `curate teacher train` (or pass --checkpoint)")
    work = ds.load_saved_view("curated") if ds.has_saved_view("curated") else ds.view()
    fields = ["id", "sample_uid", "label.label"] + [n for n in ("prelabel_oof", "embedding", "blur", "occlusion") if n in schema]
    return ds, work, schema, dict(zip(fields, work.values(fields)))


def _find_label_issues(cols: dict[str, list]) -> _LabelIssues:
    """Label issues from out-of-fold probabilities, unless those probabilities are too weak to trust (then nothing is flagged)."""
    from curate.errors.analysis import label_issues
    from curate.errors.trust import probability_quality, warning

    n = len(cols["id"])
    index = {c: i for i, c in enumerate(EMOTIONS)}
    oof = cols.get("prelabel_oof", [None] * n)
    have = [i for i in range(n) if cols["label.label"][i] in index and oof[i] is not None]
    labels = np.array([index[cols["label.label"][i]] for i in have], dtype=int)
    probs = np.array([oof[i] for i in have]).reshape(len(have), len(EMOTIONS))
    trust = probability_quality(labels, probs, list(EMOTIONS))
    found = _LabelIssues(have, np.zeros(n, bool), [None] * n, [None] * n, trust, warning(trust, "label issues are not flagged") if have else None)
    if found.flagged:
        verdict = label_issues(labels, probs)
        for j, i in enumerate(have):
            found.issue[i], found.quality[i] = bool(verdict.is_issue[j]), float(verdict.quality[j])
            found.suggested[i] = EMOTIONS[int(verdict.suggested[j])]
    return found


def _write_label_issues(ds: Any, schema: dict[str, Any], ids: list[str], found: _LabelIssues) -> None:
    from curate.store import fo_store

    f = fo_store.fo()
    if not found.have:  # unlabeled faces have nothing for cleanlab to check (and FiftyOne cannot type a field from no values)
        return
    ds.set_values("label_issue", {ids[i]: bool(found.issue[i]) for i in found.have}, key_field="id")
    if found.flagged:
        ds.set_values("label_quality", {ids[i]: found.quality[i] for i in found.have}, key_field="id")
        ds.set_values("suggested_label", {ids[i]: f.Classification(label=found.suggested[i]) for i in found.have}, key_field="id")
    else:  # untrusted probabilities: clear what an earlier run may have written, create nothing
        for stale in ("label_quality", "suggested_label"):
            if stale in schema:
                ds.set_values(stale, {ids[i]: None for i in found.have}, key_field="id")


def _write_mistakes(ds: Any, cols: dict[str, list], mistakes: dict[str, tuple[bool, str, float]]) -> None:
    from curate.store import fo_store

    if not mistakes:
        return
    f = fo_store.fo()
    ids, by_uid = cols["id"], {u: i for i, u in enumerate(cols["sample_uid"])}
    ds.set_values("mistake", {ids[by_uid[u]]: m for u, (m, _, _) in mistakes.items()}, key_field="id")
    ds.set_values("checkpoint_pred", {ids[by_uid[u]]: f.Classification(label=p, confidence=c) for u, (_, p, c) in mistakes.items()},
                  key_field="id")


def _errors(cols: dict[str, list], found: _LabelIssues, mistakes: dict[str, tuple[bool, str, float]]) -> tuple[list[int], list, list]:
    """(positions, true labels, predicted labels) of every error: a label issue or a checkpoint mistake (its prediction wins)."""
    uids = cols["sample_uid"]
    errors = [i for i in range(len(uids)) if found.issue[i] or mistakes.get(uids[i], (False,))[0]]
    predicted = [mistakes[uids[i]][1] if uids[i] in mistakes and mistakes[uids[i]][0] else found.suggested[i] for i in errors]
    return errors, [cols["label.label"][i] for i in errors], predicted


def _write_clusters(ds: Any, cols: dict[str, list], errors: list[int], true: list, predicted: list, k: int | None,
                    has_mistakes: bool) -> list:
    """Cluster the errors in embedding space; each cluster becomes an ``errors-<true>-as-<predicted>`` view (old ones go)."""
    from fiftyone import ViewField as F

    from curate.errors.analysis import cluster_errors
    from curate.store import fo_store

    f = fo_store.fo()
    by_quality = (lambda view: view.sort_by("label_quality")) if "label_quality" in ds.get_field_schema() else (lambda view: view)
    for name in [v for v in ds.list_saved_views() if v.startswith("errors-")]:
        ds.delete_saved_view(name)  # views of an earlier run describe clusters that no longer exist
    if "error_cluster" not in ds.get_field_schema():
        ds.add_sample_field("error_cluster", f.IntField)
    ds.set_values("error_cluster", [None] * len(ds))
    clusters = []
    if errors and "embedding" in cols and all(cols["embedding"][i] is not None for i in errors):
        emb = np.stack([np.asarray(cols["embedding"][i], np.float32) for i in errors])
        clusters = cluster_errors(emb, true, predicted, k=k)
        ds.set_values("error_cluster", {cols["id"][errors[m]]: c.cluster for c in clusters for m in c.members}, key_field="id")
        for c in clusters:
            ds.save_view(c.view, by_quality(ds.match(F("error_cluster") == c.cluster)), overwrite=True)
    ds.save_view("label_issues", by_quality(ds.match(F("label_issue") == True)), overwrite=True)  # noqa: E712
    if has_mistakes:
        ds.save_view("mistakes", ds.match(F("mistake") == True), overwrite=True)  # noqa: E712
    return clusters


def _visualize(ds: Any, work: Any, viz_method: str) -> dict[str, Any]:
    """fiftyone.brain visualization and uniqueness from the stored embeddings (no downloads)."""
    import fiftyone.brain as fob

    with_emb = work.exists("embedding")
    if ds.has_brain_run(BRAIN_KEY):
        ds.delete_brain_run(BRAIN_KEY)
    fob.compute_visualization(with_emb, embeddings="embedding", brain_key=BRAIN_KEY, method=viz_method, seed=0, progress=False)
    fob.compute_uniqueness(with_emb, embeddings="embedding", progress=False)
    return {"brain_key": BRAIN_KEY, "method": viz_method, "uniqueness_field": "uniqueness"}


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def analyze_errors(dataset: str, url: str, checkpoint: Path | None = None, k: int | None = None, viz_method: str = "pca",
                   visualize: bool = True) -> dict[str, Any]:
    """Label issues, a checkpoint's mistakes and clusters of both, written to FiftyOne as fields and views; returns the summary."""
    started = time.monotonic()
    ds, work, schema, cols = _read(dataset, checkpoint)
    n = len(cols["id"])
    found = _find_label_issues(cols)
    _write_label_issues(ds, schema, cols["id"], found)
    mistakes = _checkpoint_mistakes(ds, url, checkpoint) if checkpoint else {}
    _write_mistakes(ds, cols, mistakes)
    errors, true, predicted = _errors(cols, found, mistakes)
    clusters = _write_clusters(ds, cols, errors, true, predicted, k, bool(mistakes))
    brain = _visualize(ds, work, viz_method) if visualize and "embedding" in schema and n >= 3 else {}
    blur, occ = cols.get("blur", [None] * n), cols.get("occlusion", [None] * n)
    return {
        "dataset": dataset,
        "samples": n,
        "with_oof": len(found.have),
        "probability_quality": found.probability_quality,
        "label_issues_flagged": found.flagged,
        "warning": found.warning,
        "label_issues": int(found.issue.sum()),
        "mistakes": sum(1 for m, _, _ in mistakes.values() if m),
        "checked_by_checkpoint": len(mistakes),
        "errors": len(errors),
        "clusters": [{"cluster": c.cluster, "view": c.view, "size": len(c.members), "dominant": f"{c.true_label} -> {c.predicted_label}",
                      "dominant_share": round(c.confusion_share, 3), "mean_blur": _mean([blur[errors[m]] for m in c.members]),
                      "mean_occlusion": _mean([occ[errors[m]] for m in c.members])} for c in clusters],
        "top_confusions": [{"true": t, "suggested": p, "count": c} for (t, p), c in
                           collections.Counter(zip(true, predicted)).most_common(5)],
        "brain": brain,
        "seconds": round(time.monotonic() - started, 1),
    }
