"""Ingest: every input becomes a sample (FiftyOne + SQL) or a listed rejection, resumably.

Why it is safe to kill: samples are written in bounded batches, SQL first (insert-or-
ignore on the sample uid and the label event's dedup key), FiftyOne second. A file is
"done" once its filepath is in the FiftyOne dataset, so a re-run skips it, and a batch
that reached SQL but not FiftyOne is simply written again without duplicating anything.
"""

from __future__ import annotations

import collections
import csv
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from curate.exceptions import CurateError
from curate.ingest.worker import Job, Outcome, QualityScorer
from curate.settings import Settings
from curate.sources import Rejection, SourceRecord, open_source
from curate.taxonomy import AFFECTNET_NON_EMOTION

__all__ = ["IngestOptions", "ingest", "DEFAULT_NEAR_DUPLICATE_DISTANCE"]

#: pHash bits that may differ for two faces to count as near duplicates (see bench/RESULTS.md).
DEFAULT_NEAR_DUPLICATE_DISTANCE = 4


@dataclass
class IngestOptions:
    kind: str  # affectnet, fer2013, ckplus, rafdb, folder
    root: Path
    dataset: str
    split: str = "all"
    limit: int | None = None
    workers: int = 1
    chunk_size: int = 128
    write_batch: int = 1000
    blur_max: float = Settings.blur_max
    occlusion_max: float = Settings.occlusion_max
    near_duplicate_distance: int = DEFAULT_NEAR_DUPLICATE_DISTANCE
    weights: str | None = None
    engine: str = "local"  # or "ray" (curate/parallel.py): where decoding and scoring run; this process writes either way
    ray_address: str | None = None


@dataclass
class _Tally:
    seen: int = 0
    new: int = 0
    already_present: int = 0
    rejected: collections.Counter = field(default_factory=collections.Counter)
    no_emotion: collections.Counter = field(default_factory=collections.Counter)
    label_disagreements: int = 0
    rejection_rows: list[tuple[str, str, str]] = field(default_factory=list)


def _chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(iterable)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _build_sample(f, record: SourceRecord, info: dict[str, Any], uid: str, reasons: list[str]):  # noqa: ANN001, ANN202
    """One fo.Sample (``f`` is the fiftyone module, resolved once per batch). Every field goes in through the
    constructor: setting them one by one afterwards costs a third more (it validates each assignment), and this
    runs once for every face ingested."""
    width, height = info["width"], info["height"]
    fields: dict[str, Any] = {
        "metadata": f.ImageMetadata(size_bytes=info["size_bytes"], mime_type=info["mime_type"], width=width, height=height,
                                    num_channels=info["channels"]),
        "split": record.split, "source_label": record.source_label, "sample_uid": uid, "content_hash": info["content_hash"],
        "phash": info["phash"], "blur": info["blur"], "occlusion": info["occlusion"], "contrast": info.get("contrast"),
        "quality_rejected": reasons,
        "notes": list(info["notes"]) + ([record.extra["label_disagreement"]] if "label_disagreement" in record.extra else []),
    }
    if record.label is not None:
        fields["ground_truth"] = f.Classification(label=record.label)
        fields["label"] = f.Classification(label=record.label)
    if info.get("box_px"):
        x, y, w, h = info["box_px"]
        fields["face"] = f.Detection(label="face", bounding_box=[x / width, y / height, w / width, h / height])
    if record.landmarks:
        points = [(float(px) / width, float(py) / height) for px, py in record.landmarks]
        fields["landmarks"] = f.Keypoints(keypoints=[f.Keypoint(label="face", points=points)])
    for key in ("valence", "arousal"):
        if getattr(record, key) is not None:
            fields[key] = float(getattr(record, key))
    if record.subject is not None:
        fields["subject"] = record.subject
    if "usage" in record.extra:
        fields["usage"] = record.extra["usage"]
    return f.Sample(filepath=str(record.path), tags=[record.split] if record.split else [], **fields)


class _Writer:
    """Buffers finished samples and writes them SQL-first in bounded batches, on a thread of its own.

    Why a thread: the write is the bound of ingest (~1.7 ms a face, most of it inside FiftyOne), and while
    this process wrote a batch it fed the scoring workers nothing, so they idled once their two chunks each
    were done (profiled on 8,000 faces: 13 s writing, then 4.8 s more waiting for workers after their start-up).
    Measured gain on 2 cores, where the workers and the writer share the CPU: 3-5 %. One writer thread and at most one
    batch queued behind it keep the writes strictly one after another, in input order, so the resume rules
    are those of a single writer; memory holds at most two batches. A failed write is raised here, at the
    next ``add`` or at ``close``."""

    def __init__(self, url: str, dataset_id: int, dataset_name: str, fo_dataset: Any, batch: int) -> None:
        import concurrent.futures as cf

        self.url, self.dataset_id, self.dataset_name, self.ds, self.batch = url, dataset_id, dataset_name, fo_dataset, batch
        self.pending: list[tuple[SourceRecord, dict[str, Any], list[str]]] = []
        self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix="curate-ingest-writer")
        self._writing: cf.Future | None = None

    def add(self, record: SourceRecord, info: dict[str, Any], reasons: list[str]) -> None:
        self.pending.append((record, info, reasons))
        if len(self.pending) >= self.batch:
            self._hand_over()

    def _hand_over(self) -> None:
        """Queue the pending batch behind the one being written (waiting for that one first)."""
        self._wait()
        if self.pending:
            batch, self.pending = self.pending, []
            self._writing = self._pool.submit(self._write, batch)

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self) -> None:
        """Write what is left and wait for every write."""
        try:
            self._hand_over()
            self._wait()
        finally:
            self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        """Ingest is failing for another reason: let the write under way finish (a batch lands whole or not at
        all), write nothing more, and keep the first error the one the user sees. A re-run scores the rest."""
        self.pending.clear()
        try:
            self._wait()
        except Exception:  # noqa: BLE001 - the error already on its way out is the one to report
            pass
        finally:
            self._pool.shutdown(wait=True)

    def _write(self, pending: list[tuple[SourceRecord, dict[str, Any], list[str]]]) -> None:
        from curate.store import fo_store
        from curate.store.sql import ledger, session
        from curate.store.sql.models import LabelSource

        rows, uids = [], []
        for record, info, reasons in pending:
            uid = ledger.sample_uid(info["content_hash"], record.rel_path)
            uids.append(uid)
            rows.append({
                "uid": uid, "content_hash": info["content_hash"], "source_path": record.rel_path, "split": record.split,
                "source_label": record.source_label, "quality_rejected": ",".join(reasons) or None,
                "blur": info["blur"], "occlusion": info["occlusion"],
            })
        with session.session_scope(self.url) as db:
            ids = ledger.register_samples(db, self.dataset_id, rows)
            ledger.append_label_events(db, [
                {"sample_id": ids[uid], "label": record.label, "source": LabelSource.dataset, "actor": f"dataset:{self.dataset_name}",
                 "dedup_key": f"dataset:{self.dataset_id}:{uid}"}
                for (record, _, _), uid in zip(pending, uids) if record.label is not None
            ])
            ledger.clear_rejections(db, self.dataset_id, [r.rel_path for r, _, _ in pending])
        f = fo_store.fo()
        fo_store.add_samples(self.ds, [_build_sample(f, r, i, uid, q) for (r, i, q), uid in zip(pending, uids)])


def _refuse_samples_the_ledger_never_saw(ds, url: str, dataset_id: int, name: str) -> None:  # noqa: ANN001
    """FiftyOne's database is one per machine, the ledger one per CURATE_HOME (or CURATE_DB_URL). A FiftyOne
    dataset left by another home would look "already ingested" and leave this ledger empty, and every later
    stage would find nothing to work on. The writer registers samples in SQL before FiftyOne, so a sample
    only FiftyOne knows can only come from another ledger."""
    from sqlalchemy import select

    from curate.secrets import redact_url
    from curate.store.sql import session
    from curate.store.sql.models import Sample

    if len(ds) == 0:
        return
    with session.session_scope(url) as db:
        known = set(db.scalars(select(Sample.uid).where(Sample.dataset_id == dataset_id)))
    strangers = sum(1 for uid in ds.values("sample_uid") if uid not in known)
    if strangers:
        raise CurateError(f"FiftyOne dataset {name!r} holds {strangers} samples that the ledger at {redact_url(url)} has never seen "
                          f"(made with another CURATE_HOME or CURATE_DB_URL?); ingest under another --dataset name, or delete the "
                          f"stale one with `fiftyone datasets delete {name}`")


def _inside(path: Path, roots: tuple[str, ...]) -> bool:
    """Whether ``path``, links and ``..`` resolved, lies under one of ``roots`` (already real paths)."""
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r + os.sep) for r in roots)


def _score_and_write(options: IngestOptions, url: str, dataset_id: int, ds: Any, layout_name: str, items: Iterable[SourceRecord | Rejection],
                     score: Callable, progress: Callable[[int], None] | None, media: Path | None = None) -> _Tally:
    """Feed every input not yet in ``ds`` to the scoring workers (``score``: curate.parallel.worker_pool's map) and
    write what comes back, in bounded batches; every other input is counted or listed as rejected."""
    from curate.quality.scores import quality_reasons
    from curate.store import fo_store

    _refuse_samples_the_ledger_never_saw(ds, url, dataset_id, options.dataset)
    ds.info.update({"source_format": options.kind, "layout": layout_name, "root": str(options.root.absolute())})
    ds.save()
    done = fo_store.existing_filepaths(ds)
    tally = _Tally()
    writer = _Writer(url, dataset_id, options.dataset, ds, options.write_batch)
    claimed: set[str] = set()
    # A file reached through a link that leaves the dataset root (happy/x.png -> ~/private.png) is not the dataset's:
    # it is listed as rejected, never read. Faces a layout writes itself (fer2013.csv pixels) live under ``media``.
    root = options.root.parent if options.root.is_file() else options.root
    roots = tuple(os.path.realpath(p) for p in (root, media) if p is not None)

    def reject(rel_path: str, reason: str, detail: str) -> None:
        rel_path = rel_path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        tally.rejected[reason] += 1
        tally.rejection_rows.append((rel_path, reason, detail))

    def jobs() -> Iterator[tuple[SourceRecord, Job]]:
        limited = itertools.islice(items, options.limit) if options.limit else items
        for index, item in enumerate(limited):
            tally.seen += 1
            if isinstance(item, Rejection):
                reject(item.rel_path, item.reason, item.detail)
                continue
            if not _inside(item.path, roots):
                reject(item.rel_path, "outside_root", f"{item.rel_path} resolves outside {root} (through a link)")
                continue
            key = str(item.path)
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(item.rel_path).decode("utf-8", "backslashreplace")
                reject(shown, "non_utf8_filename", "the name is not valid UTF-8; rename the file to ingest it")
                continue
            if key in claimed:
                reject(item.rel_path, "duplicate_annotation", "the same file is listed more than once")
                continue
            claimed.add(key)
            if item.label is None and options.kind == "affectnet" and (item.source_label or "").isdigit():
                tally.no_emotion[AFFECTNET_NON_EMOTION.get(int(item.source_label), "other")] += 1
            if "label_disagreement" in item.extra:
                tally.label_disagreements += 1
            if key in done:
                tally.already_present += 1
                if progress:
                    progress(1)
                continue
            yield item, Job(index, key, item.box, item.box_units)

    def handle(chunk: list[tuple[SourceRecord, Job]], outcomes: list[Outcome]) -> None:
        records = {job.index: record for record, job in chunk}
        for outcome in outcomes:
            record = records[outcome.index]
            if not outcome.ok:
                reject(record.rel_path, outcome.reason, outcome.detail)
            else:
                reasons = quality_reasons(outcome.info["blur"], outcome.info["occlusion"], options.blur_max, options.occlusion_max,
                                          outcome.info.get("contrast"))
                writer.add(record, outcome.info, reasons)
                tally.new += 1
        if progress:
            progress(len(chunk))

    # Bounded (two chunks in flight per worker): memory does not grow with the dataset, whichever engine scores.
    try:
        for chunk, outcomes in score(_chunks(jobs(), options.chunk_size), lambda c: [job for _, job in c]):
            handle(chunk, outcomes)
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    return tally


def ingest(options: IngestOptions, url: str, home: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the ingest stage and return its summary (see ``curate ingest --json``)."""
    from curate.parallel import preflight, worker_pool
    from curate.store import fo_store
    from curate.store.sql import ledger, session

    started = time.monotonic()
    preflight(options.engine, options.ray_address)  # before anything is created: a bad engine leaves no empty dataset
    media = home / "media" / options.dataset
    layout, items = open_source(options.kind, options.root, options.split, media=media)
    session.require_schema(url)
    with session.session_scope(url) as db:
        dataset_id = ledger.get_or_create_dataset(db, options.dataset, f"{options.kind}/{layout.name}", str(options.root.absolute())).id
    workers = max(1, options.workers)
    with worker_pool(QualityScorer, (options.weights,), engine=options.engine, workers=workers, ray_address=options.ray_address) as score:
        # The workers load the quality net while FiftyOne starts its database: ~3 s and ~5 s that now overlap.
        ds = fo_store.load_dataset(options.dataset)
        tally = _score_and_write(options, url, dataset_id, ds, layout.name, items, score, progress, media)
    with session.session_scope(url) as db:
        ledger.record_rejections(db, dataset_id, tally.rejection_rows)
    report = _write_rejection_report(home, options.dataset, tally.rejection_rows)

    from curate.ingest.mark_duplicates import mark_duplicates

    duplicates = mark_duplicates(ds, options.near_duplicate_distance)
    fo_store.ensure_views(ds)
    removed = collections.Counter(r for reasons in ds.values("quality_rejected") for r in (reasons or []))
    ingested = tally.new + tally.already_present
    assert tally.seen == ingested + sum(tally.rejected.values()), "every input is ingested or rejected"
    return {
        "dataset": options.dataset,
        "format": options.kind,
        "layout": layout.name,
        "root": str(options.root),
        "seen": tally.seen,
        "ingested": ingested,
        "new": tally.new,
        "already_present": tally.already_present,
        "rejected": dict(sorted(tally.rejected.items())),
        "rejected_report": str(report) if report else None,
        "quality_removed": {"blur": removed.get("blur", 0), "occlusion": removed.get("occlusion", 0), "blank": removed.get("blank", 0)},
        "thresholds": {"blur_max": options.blur_max, "occlusion_max": options.occlusion_max},
        "no_emotion": dict(tally.no_emotion),
        "label_disagreements": tally.label_disagreements,
        "duplicates": duplicates,
        "samples_in_dataset": len(ds),
        "workers": workers,
        "engine": options.engine,
        "seconds": round(time.monotonic() - started, 2),
    }


def _write_rejection_report(home: Path, dataset: str, rows: list[tuple[str, str, str]]) -> Path | None:
    """rejected.csv beside the ledger: path, reason, detail (written atomically)."""
    if not rows:
        return None
    out = home / "reports" / dataset / "ingest-rejected.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason", "detail"])
        writer.writerows(rows)
    tmp.replace(out)
    return out
