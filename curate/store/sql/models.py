"""The durable ledger: typed SQLAlchemy 2 models.

The schema itself is owned by the Alembic migrations in ``db/migrations/``; these
classes mirror it for typed queries. Unique constraints carry idempotency: every
write that may be repeated (re-ingest, re-push, re-pull) has a natural key, so a
repeated write is an insert that is ignored rather than a duplicate.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "LabelSource",
    "ReviewState",
    "Dataset",
    "Sample",
    "LabelEvent",
    "ReviewTask",
    "ReviewResult",
    "ReviewPull",
    "ModelRun",
    "Checkpoint",
    "WorkflowRun",
    "IngestRejection",
    "CurrentLabel",
    "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class LabelSource(str, enum.Enum):
    dataset = "dataset"
    model = "model"
    human = "human"


class ReviewState(str, enum.Enum):
    pending = "pending"
    done = "done"
    skipped = "skipped"
    cancelled = "cancelled"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, dt.datetime: DateTime(timezone=True)}


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_format: Mapped[str | None] = mapped_column(String(50))
    root: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.current_timestamp())


class Sample(Base):
    """One image. ``uid`` = hash(content hash, source path): stable across re-ingests."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("dataset_id", "uid", name="uq_samples_dataset_uid"),
        Index("ix_samples_content_hash", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    source_path: Mapped[str] = mapped_column(Text)
    split: Mapped[str | None] = mapped_column(String(20))
    source_label: Mapped[str | None] = mapped_column(String(50))
    quality_rejected: Mapped[str | None] = mapped_column(String(100))  # comma-joined reasons
    blur: Mapped[float | None] = mapped_column(Float)
    occlusion: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.current_timestamp())


class LabelEvent(Base):
    """Append-only (triggers refuse UPDATE/DELETE). ``dedup_key`` makes repeated writes no-ops."""

    __tablename__ = "label_events"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_label_events_dedup_key"),
        Index("ix_label_events_sample_source", "sample_id", "source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"))
    label: Mapped[str] = mapped_column(String(50))
    source: Mapped[LabelSource] = mapped_column(Enum(LabelSource, name="label_source", native_enum=False, length=10))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    previous_label: Mapped[str | None] = mapped_column(String(50))
    confidence: Mapped[float | None] = mapped_column(Float)
    model_run_id: Mapped[int | None] = mapped_column(ForeignKey("model_runs.id"))
    ls_project_id: Mapped[int | None] = mapped_column(Integer)
    ls_task_id: Mapped[int | None] = mapped_column(Integer)
    ls_annotation_id: Mapped[int | None] = mapped_column(Integer)
    dedup_key: Mapped[str] = mapped_column(String(200))


class ReviewRemoval(Base):
    """Append-only, like label_events: a reviewer's "not a face" or "unclear" takes a face out of the working set
    (``removed`` true, ``reason`` why); a later answer with an emotion brings it back (``removed`` false). The newest
    row per sample is its state. ``dedup_key`` makes repeated pulls no-ops."""

    __tablename__ = "review_removals"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_review_removals_dedup_key"),
        Index("ix_review_removals_sample", "sample_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"))
    removed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ls_project_id: Mapped[int | None] = mapped_column(Integer)
    ls_task_id: Mapped[int | None] = mapped_column(Integer)
    ls_annotation_id: Mapped[int | None] = mapped_column(Integer)
    dedup_key: Mapped[str] = mapped_column(String(200))


class ReviewTask(Base):
    """A sample sent to Label Studio. State machine: pending -> done | skipped | cancelled."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        UniqueConstraint("sample_id", "ls_project_id", name="uq_review_tasks_sample_project"),
        UniqueConstraint("ls_task_id", name="uq_review_tasks_ls_task"),
        CheckConstraint("state IN ('pending','done','skipped','cancelled')", name="ck_review_tasks_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"))
    ls_project_id: Mapped[int] = mapped_column(Integer)
    ls_task_id: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), default=ReviewState.pending.value)
    reason: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReviewResult(Base):
    """One per review task: the labels at push time and what the humans decided at the latest pull.

    ``annotations_sig`` fingerprints the task's annotations (ids and edit times), so a pull skips
    tasks nobody touched since the previous one."""

    __tablename__ = "review_results"

    review_task_id: Mapped[int] = mapped_column(ForeignKey("review_tasks.id", ondelete="CASCADE"), primary_key=True)
    label_at_push: Mapped[str | None] = mapped_column(String(50))
    model_label: Mapped[str | None] = mapped_column(String(50))
    model_confidence: Mapped[float | None] = mapped_column(Float)
    human_label: Mapped[str | None] = mapped_column(String(50))
    votes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    agreement: Mapped[float | None] = mapped_column(Float)
    conflict: Mapped[bool] = mapped_column(Boolean, default=False)
    annotations_sig: Mapped[str | None] = mapped_column(String(64))
    pulled_at: Mapped[dt.datetime | None] = mapped_column()
    # none_as_null: None is SQL NULL, not the JSON text 'null', so IS NULL means "nothing recorded"
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))  # annotator -> latest answer (emotion or removal)
    consensus_quality: Mapped[float | None] = mapped_column(Float)  # CROWDLAB's, for tasks answered two or more times


class ReviewPull(Base):
    """A completed pull. ``listed_from`` is the server's clock when its listing began: the next pull
    lists only tasks updated after it (less a little slack), so a task edited mid-listing is never missed."""

    __tablename__ = "review_pulls"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    ls_project_id: Mapped[int] = mapped_column(Integer)
    listed_from: Mapped[dt.datetime] = mapped_column()
    full: Mapped[bool] = mapped_column(Boolean)
    listed: Mapped[int] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer)
    new_human_labels: Mapped[int] = mapped_column(Integer)
    finished_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    annotator_quality: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))  # annotator -> CROWDLAB quality


class ModelRun(Base):
    __tablename__ = "model_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))  # teacher-train, prelabel, retrain, ...
    architecture: Mapped[str] = mapped_column(String(100))
    weights_hash: Mapped[str | None] = mapped_column(String(64))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("path", name="uq_checkpoints_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_run_id: Mapped[int | None] = mapped_column(ForeignKey("model_runs.id"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    architecture: Mapped[str] = mapped_column(String(100))
    epoch: Mapped[int | None] = mapped_column(Integer)
    label_snapshot_id: Mapped[int | None] = mapped_column(Integer)  # max label_events.id trained on
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    is_best: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow: Mapped[str] = mapped_column(String(200))
    path: Mapped[str | None] = mapped_column(Text)
    config_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="running")
    stages: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # stage -> {status, summary}
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class IngestRejection(Base):
    """An input that is not a sample, with a stable reason code (latest sighting wins)."""

    __tablename__ = "ingest_rejections"
    __table_args__ = (UniqueConstraint("dataset_id", "source_path", name="uq_ingest_rejections_dataset_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    source_path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str | None] = mapped_column(Text)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CurrentLabel(Base):
    """Read-only mapping of the ``current_labels`` view (human beats dataset; model never counts)."""

    __tablename__ = "current_labels"
    __table_args__ = {"info": {"is_view": True}}

    sample_id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(10))
    label_event_id: Mapped[int] = mapped_column(Integer)
