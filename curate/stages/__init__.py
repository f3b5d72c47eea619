"""Every stage of the loop, declared once (see spec.py): the command line and workflows both read ``STAGES``."""

from __future__ import annotations

from curate.stages.analysis import ERRORS, REPORT
from curate.stages.data import INGEST, QUALITY
from curate.stages.models import COMPARE, EXPORT, PRELABEL, RETRAIN, TEACHER
from curate.stages.review import LABELSTUDIO, REVIEW_PULL, REVIEW_PUSH, WAIT_REVIEW, StageWaiting
from curate.stages.spec import Stage, StageContext

__all__ = ["STAGES", "Stage", "StageContext", "StageWaiting"]

STAGES: dict[str, Stage] = {s.name: s for s in (INGEST, QUALITY, TEACHER, PRELABEL, ERRORS, LABELSTUDIO, REVIEW_PUSH, WAIT_REVIEW,
                                                REVIEW_PULL, RETRAIN, EXPORT, COMPARE, REPORT)}
