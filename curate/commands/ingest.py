"""`curate ingest <dataset> ROOT`: load a FER dataset into FiftyOne + the SQL ledger, scored for quality."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.commands.common import JsonOption, settings_from
from curate.output import Reporter, reporter

app = typer.Typer(help="Load a dataset into FiftyOne and the ledger; score blur/occlusion; find duplicates.", no_args_is_help=True)

SplitOption = Annotated[str, typer.Option("--split", help="train, val, test or all.")]
LimitOption = Annotated[Optional[int], typer.Option("--limit", min=1, help="Stop after the first N inputs.")]
WorkersOption = Annotated[Optional[int], typer.Option("--workers", min=1, help="Decode/score processes (default: all cores).")]
NameOption = Annotated[Optional[str], typer.Option("--dataset", "-d", help="Dataset name (default: the dataset kind).")]
BlurOption = Annotated[Optional[float], typer.Option("--blur-max", min=0.0, max=1.0, help="Remove faces with blur above this.")]
OcclusionOption = Annotated[Optional[float], typer.Option("--occlusion-max", min=0.0, max=1.0, help="Remove faces occluded above this.")]
BatchOption = Annotated[int, typer.Option("--write-batch", min=1, help="Samples per FiftyOne/SQL write (bounds memory).")]


def _human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/] ({s['format']}/{s['layout']}): seen {s['seen']}, ingested {s['ingested']} "
          f"({s['new']} new, {s['already_present']} already present), rejected {sum(s['rejected'].values())}")
    for reason, count in s["rejected"].items():
        r.say(f"  rejected {count:>6}  {reason}")
    if s["rejected_report"]:
        r.say(f"  rejection list: {s['rejected_report']}")
    q = s["quality_removed"]
    r.say(f"quality: removed {q['blur']} for blur > {s['thresholds']['blur_max']}, {q['occlusion']} for occlusion > "
          f"{s['thresholds']['occlusion_max']} (kept in the dataset, outside the 'curated' view)")
    d = s["duplicates"]
    r.say(f"duplicates: {d['groups']} groups ({d['exact']} exact, {d['near']} near copies); "
          f"{d['cross_split_groups']} groups span splits ({d['cross_split_samples']} samples, view 'leakage')")
    if s["no_emotion"]:
        r.say(f"not an emotion (kept, never trained on): {s['no_emotion']}")
    r.say(f"done in {s['seconds']} s")


def _run(ctx: typer.Context, kind: str, root: Path, dataset: Optional[str], split: str, limit: Optional[int], workers: Optional[int],
         blur_max: Optional[float], occlusion_max: Optional[float], write_batch: int, json_: bool) -> None:
    with reporter(json_, _human) as out:
        from curate.ingest.stage import IngestOptions, ingest

        settings = settings_from(ctx, workers=workers, blur_max=blur_max, occlusion_max=occlusion_max)
        name = dataset or kind
        options = IngestOptions(kind=kind, root=root, dataset=name, split=split, limit=limit, workers=settings.worker_count,
                                write_batch=write_batch, blur_max=settings.blur_max, occlusion_max=settings.occlusion_max)
        with out.progress(None, f"ingest {name}") as bar:
            summary = ingest(options, settings.database_url, settings.home, progress=bar.advance)
        out.update(**summary)


def _register(kind: str, doc: str) -> None:
    def command(
        ctx: typer.Context,
        root: Annotated[Path, typer.Argument(help="Dataset root (or the csv file for fer2013).")],
        dataset: NameOption = None,
        split: SplitOption = "all",
        limit: LimitOption = None,
        workers: WorkersOption = None,
        blur_max: BlurOption = None,
        occlusion_max: OcclusionOption = None,
        write_batch: BatchOption = 1000,
        json_: JsonOption = False,
    ) -> None:
        _run(ctx, kind, root, dataset, split, limit, workers, blur_max, occlusion_max, write_batch, json_)

    command.__doc__ = doc
    app.command(kind)(command)


_register("affectnet", "AffectNet: original csv release, *_exp.npy release, class-folder or YOLO re-packs (auto-detected).")
_register("fer2013", "FER2013: fer2013.csv (PublicTest/PrivateTest kept as 'usage') or train|test class folders.")
_register("ckplus", "CK+: CK+48/<class>/S###_###_*.png; the subject id is kept for subject-disjoint splits.")
_register("rafdb", "RAF-DB basic: EmoLabel/list_patition_label.txt with Image/aligned or Image/original.")
_register("folder", "Any folder: [<split>/]<emotion>/*.jpg, or unlabeled images.")
