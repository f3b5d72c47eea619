"""Stages that bring faces in: ``ingest`` and ``quality``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.parallel import ENGINES
from curate.sources import DATASETS
from curate.stages.spec import Stage, StageContext, option


@dataclass(kw_only=True)  # keyword-only: the stages' required fields (ingest's kind and root) may follow
class _Thresholds:
    """The quality thresholds both stages apply; not given means the settings' value (curate/settings.py holds the defaults)."""

    blur_max: float | None = option(None, "Remove faces with blur above this.", minimum=0.0, maximum=1.0, setting="blur_max")
    occlusion_max: float | None = option(None, "Remove faces occluded above this.", minimum=0.0, maximum=1.0, setting="occlusion_max")


@dataclass
class IngestStageOptions(_Thresholds):
    kind: str = option(help="Dataset format: " + ", ".join(DATASETS) + ".", cli=False)
    root: Path = option(help="Dataset root (or the csv file for fer2013).", argument=True)
    dataset: str | None = option(None, "Dataset name (default: settings.dataset when set, else the dataset kind).", flag="--dataset")
    split: str = option("all", "train, val, test or all.", choices=("train", "val", "test", "all"))
    limit: int | None = option(None, "Stop after the first N inputs.", minimum=1)
    workers: int | None = option(None, "Decode/score processes (default: all cores but one, for the writer).", minimum=1, setting="workers")
    write_batch: int = option(1000, "Samples per FiftyOne/SQL write (bounds memory).", minimum=1)
    engine: str = option("local", "Where decoding and quality scoring run: local (worker processes) or ray (Ray actors; a local "
                                  "Ray unless --ray-address or RAY_ADDRESS names a cluster). This process writes either way.", choices=ENGINES)
    ray_address: str | None = option(None, "Ray cluster to use with --engine ray (default: RAY_ADDRESS, else a local Ray).")


def run_ingest(ctx: StageContext, opts: IngestStageOptions) -> dict[str, Any]:
    from curate.exceptions import CurateError
    from curate.ingest.stage import IngestOptions, ingest
    if opts.kind not in DATASETS:
        raise CurateError(f"ingest kind {opts.kind!r} is not one of {', '.join(DATASETS)}")
    s = ctx.settings
    name = ingest_dataset(ctx, opts)
    options = IngestOptions(kind=opts.kind, root=ctx.path(opts.root), dataset=name, split=opts.split, limit=opts.limit,
                            workers=s.worker_count, write_batch=opts.write_batch, blur_max=s.blur_max, occlusion_max=s.occlusion_max,
                            engine=opts.engine, ray_address=opts.ray_address)
    return ingest(options, s.database_url, s.home, progress=ctx.progress)


@dataclass
class QualityStageOptions(_Thresholds):
    dataset: str | None = option(None, "Dataset name.", setting="dataset")


def run_quality(ctx: StageContext, opts: QualityStageOptions) -> dict[str, Any]:
    from curate.quality.apply import apply_thresholds

    s = ctx.settings
    return apply_thresholds(s.dataset, s.database_url, s.blur_max, s.occlusion_max)


def _ingest_human(r: Any) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/] ({s['format']}/{s['layout']}): seen {s['seen']}, ingested {s['ingested']} "
          f"({s['new']} new, {s['already_present']} already present), rejected {sum(s['rejected'].values())}")
    for reason, count in s["rejected"].items():
        r.say(f"  rejected {count:>6}  {reason}")
    if s["rejected_report"]:
        r.say(f"  rejection list: {s['rejected_report']}")
    q = s["quality_removed"]
    r.say(f"quality: removed {q['blur']} for blur > {s['thresholds']['blur_max']}, {q['occlusion']} for occlusion > "
          f"{s['thresholds']['occlusion_max']}, {q.get('blank', 0)} blank frames (kept in the dataset, outside the 'curated' view)")
    d = s["duplicates"]
    r.say(f"duplicates: {d['groups']} groups ({d['exact']} exact, {d['near']} near copies); "
          f"{d['cross_split_groups']} groups span splits ({d['cross_split_samples']} samples, view 'leakage')")
    if s["no_emotion"]:
        r.say(f"not an emotion (kept, never trained on): {s['no_emotion']}")
    r.say(f"done in {s['seconds']} s")


def _quality_human(r: Any) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: blur > {s['blur_max']} removes {s['removed']['blur']}, occlusion > {s['occlusion_max']} "
          f"removes {s['removed']['occlusion']}, {s['removed'].get('blank', 0)} blank frames; {s['curated']} of {s['samples']} samples in 'curated' "
          f"({s['changed']} changed state)")


def ingest_dataset(ctx: StageContext, opts: IngestStageOptions) -> str:
    """The dataset an ingest writes: a name set on purpose (workflow settings, env, --dataset) wins, else its kind's."""
    from curate.settings import check_dataset_name

    s = ctx.settings
    name = opts.dataset or (s.dataset if s.origins.get("dataset", "default") != "default" else opts.kind)
    check_dataset_name(name, "--dataset" if opts.dataset else "dataset")
    return name


INGEST = Stage("ingest", "ingest KIND", IngestStageOptions, run_ingest,
               "Load a dataset into FiftyOne and the ledger; score blur/occlusion; find duplicates.",
               _ingest_human, "ingest", writes=True, dataset_of=ingest_dataset)
QUALITY = Stage("quality", "quality", QualityStageOptions, run_quality,
                "Re-apply quality thresholds (settings < workflow < env < these options) to a dataset.",
                _quality_human, writes=True)
