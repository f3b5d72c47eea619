"""`curate ingest <dataset> ROOT`: load a FER dataset into FiftyOne + the SQL ledger, scored for quality."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curate.output import Reporter

app = typer.Typer(help="Load a dataset into FiftyOne and the ledger; score blur/occlusion; find duplicates.", no_args_is_help=True)

SplitOption = Annotated[str, typer.Option("--split", help="train, val, test or all.")]
LimitOption = Annotated[Optional[int], typer.Option("--limit", min=1, help="Stop after the first N inputs.")]
WorkersOption = Annotated[Optional[int], typer.Option("--workers", min=1, help="Decode/score processes (default: all cores but one, for the writer).")]
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


KIND_HELP = {
    "affectnet": "AffectNet: original csv release, *_exp.npy release, class-folder or YOLO re-packs (auto-detected).",
    "fer2013": "FER2013: fer2013.csv (PublicTest/PrivateTest kept as 'usage') or train|test class folders.",
    "ckplus": "CK+: CK+48/<class>/S###_###_*.png; the subject id is kept for subject-disjoint splits.",
    "rafdb": "RAF-DB basic: EmoLabel/list_patition_label.txt with Image/aligned or Image/original.",
    "folder": "Any folder: [<split>/]<emotion>/*.jpg, or unlabeled images.",
}
