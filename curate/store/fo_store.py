"""FiftyOne access: the working index people browse. Only this module and the stages that
build samples import fiftyone, and only inside functions (it takes seconds to import).

Saved views kept in step with the fields:
- ``curated``: the working set: quality-passing samples (empty ``quality_rejected``) that no reviewer
  answered "not a face" or "unclear" for (empty ``review_removed``)
- ``quality_rejected``: faces removed for blur/occlusion (or as blank frames), with their reasons
- ``not_a_face``, ``unclear``: faces a reviewer took out of the working set (curate/review/mirror.py)
- ``duplicates``: every member of an exact or near duplicate group
- ``leakage``: duplicate groups that span splits (train/test leakage)
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["fo", "load_dataset", "declare_schema", "existing_filepaths", "ensure_views", "add_samples", "VIEWS_VERSION"]


def fo():  # noqa: ANN201 - the fiftyone module, imported on first use with quiet settings
    """FiftyOne, connected to curate's own embedded database (curate/store/database.py) unless FIFTYONE_DATABASE_URI
    names one: never to FiftyOne's machine-wide service, which serves whichever folder it was started on."""
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        from curate.store.database import ensure_database

        ensure_database(_home())
    import fiftyone

    return fiftyone


def _home():  # noqa: ANN202 - Path
    """CURATE_HOME as the settings resolve it from the environment (`curate --home` sets the variable too)."""
    from pathlib import Path

    from curate.settings import Settings

    return Path(os.environ["CURATE_HOME"]).expanduser() if os.environ.get("CURATE_HOME") else Settings().home


def load_dataset(name: str, create: bool = True):  # noqa: ANN201
    """The persistent dataset ``name`` (created when missing and ``create``)."""
    f = fo()
    if f.dataset_exists(name):
        return f.load_dataset(name)
    if not create:
        from curate.exceptions import CurateError

        raise CurateError(f"FiftyOne dataset {name!r} does not exist; run `curate ingest ... --dataset {name}` first")
    ds = f.Dataset(name, persistent=True)
    ds.info["created_by"] = "curate"
    ds.save()
    declare_schema(ds)
    return ds


def declare_schema(ds) -> None:  # noqa: ANN001
    """Declare curate's fields up front: a field whose values are all None would otherwise not exist."""
    f = fo()
    str_fields = ("split", "source_label", "sample_uid", "content_hash", "phash", "usage", "subject", "duplicate_of", "duplicate_kind")
    schema = ds.get_field_schema()
    for name in str_fields:
        if name not in schema:
            ds.add_sample_field(name, f.StringField)
    for name in ("blur", "occlusion", "contrast", "valence", "arousal"):
        if name not in schema:
            ds.add_sample_field(name, f.FloatField)
    for name in ("quality_rejected", "notes"):
        if name not in schema:
            ds.add_sample_field(name, f.ListField, subfield=f.StringField)
    for name, doc in (("ground_truth", f.Classification), ("label", f.Classification), ("face", f.Detection), ("landmarks", f.Keypoints)):
        if name not in schema:
            ds.add_sample_field(name, f.EmbeddedDocumentField, embedded_doc_type=doc)
    if "duplicate_group" not in schema:
        ds.add_sample_field("duplicate_group", f.IntField)
    if "cross_split_duplicate" not in schema:
        ds.add_sample_field("cross_split_duplicate", f.BooleanField)


def existing_filepaths(ds) -> set[str]:  # noqa: ANN001
    return set(ds.distinct("filepath")) if len(ds) else set()


def add_samples(ds, samples: list[Any]) -> None:  # noqa: ANN001
    """FiftyOne's bulk insert, minus the per-sample work curate makes redundant (a third of its cost, measured in
    bench/ingest.py): the fields are declared up front (:func:`declare_schema`) and built with FiftyOne's own types by
    one function, so validating each sample against the schema again checks nothing. A batch that does carry a
    field the schema lacks (a dataset made by an older curate) still expands it."""
    if not samples:
        return
    schema = ds.get_field_schema()
    unknown = any(name not in schema for sample in samples for name in sample.field_names)
    ds.add_samples(samples, progress=False, validate=False, expand_schema=unknown)


#: Bumped when the saved views' definitions change, so a dataset made by an older curate gets them once more.
VIEWS_VERSION = 2


def ensure_views(ds) -> None:  # noqa: ANN001
    """(Re)define the saved views; they are filters, so they follow later field changes by themselves.

    Saving a view replaces its document, and another process that holds the dataset open then fails to load
    that view ("Failed to update document"): so callers that run often (the review mirror) call this only when
    :data:`VIEWS_VERSION` says the definitions changed, and ``curated`` already names ``review_removed``
    before any face has one."""
    from fiftyone import ViewField as F

    from curate.taxonomy import REMOVAL_REASONS

    schema = ds.get_field_schema()
    kept = ~F("review_removed").exists()  # a reviewer's "not a face" / "unclear" (curate/review/mirror.py)
    if "quality_rejected" in schema:
        kept = (F("quality_rejected").length() == 0) & kept
    views = {"curated": ds.match(kept), **{reason: ds.match(F("review_removed") == reason) for reason in REMOVAL_REASONS}}
    if "quality_rejected" in schema:
        views["quality_rejected"] = ds.match(F("quality_rejected").length() > 0)
    if "duplicate_group" in schema:
        views["duplicates"] = ds.exists("duplicate_group").sort_by("duplicate_group")
        views["leakage"] = ds.match(F("cross_split_duplicate") == True).sort_by("duplicate_group")  # noqa: E712
    for name, view in views.items():
        ds.save_view(name, view, overwrite=True)
    ds.info["curate_views"] = VIEWS_VERSION
    ds.save()
