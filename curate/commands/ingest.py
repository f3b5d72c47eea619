"""`curate ingest <kind> ROOT`: one sub-command per registered dataset kind (curate/sources)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Load a dataset into FiftyOne and the ledger; score blur/occlusion; find duplicates.", no_args_is_help=True)
