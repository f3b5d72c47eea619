"""`curate teacher import` and `curate manifest export`: the bridge to training where FiftyOne and SQL are absent.

(`curate teacher train` itself is derived from its stage declaration, curate/stages/models.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.output import reporter

teacher_app = typer.Typer(help="Train the pre-labeling teacher (calibrated, with out-of-fold probabilities).", no_args_is_help=True)


@teacher_app.command("import")
def teacher_import(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="teacher.safetensors trained elsewhere (e.g. python -m curate.models.from_manifest).")],
    dataset: DatasetOption = None,
    json_: JsonOption = False,
) -> None:
    """Register a teacher trained from a manifest (GPU machine) and store its out-of-fold probabilities."""
    with reporter(json_, lambda r: r.say(f"registered {r.summary['checkpoint']} as the teacher of {r.summary['dataset']} "
                                         f"({r.summary['oof_samples_stored']} samples got out-of-fold probabilities)")) as rep:
        from curate.prelabel.teacher import import_teacher

        s = settings_from(ctx, dataset=dataset)
        rep.update(**import_teacher(checkpoint, s.dataset, s.database_url))


manifest_app = typer.Typer(help="Plain-data manifests (path, label, split, sample_uid): train where FiftyOne and SQL are absent.",
                           no_args_is_help=True)


@manifest_app.command("export")
def manifest_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    dataset: DatasetOption = None,
    relative_to: Annotated[Optional[Path], typer.Option("--relative-to", help="Write paths relative to this folder (to move them with it).")] = None,
    all_samples: Annotated[bool, typer.Option("--all/--curated", help="Every sample, or the quality-passing working set (default).")] = False,
    json_: JsonOption = False,
) -> None:
    """Write the dataset's samples with their current labels (human beats dataset) as a manifest CSV."""
    with reporter(json_, lambda r: r.say(f"{r.summary['rows']} rows ({r.summary['labeled']} labeled) -> {r.summary['manifest']}")) as rep:
        from curate.models.manifest import from_dataset, write_manifest

        s = settings_from(ctx, dataset=dataset)
        rows = from_dataset(s.dataset, s.database_url, curated_only=not all_samples)
        n = write_manifest(rows, out, relative_to.expanduser().resolve() if relative_to else None)
        rep.update(dataset=s.dataset, manifest=str(out), rows=n, labeled=sum(1 for r in rows if r.label))
