"""Options and helpers shared by the command modules (kept free of heavy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from curate.settings import Settings, load_settings

JsonOption = Annotated[bool, typer.Option("--json", help="Print a one-line JSON summary as the last stdout line.")]
DatasetOption = Annotated[Optional[str], typer.Option("--dataset", "-d", help="Dataset name (default: settings.dataset).")]


def settings_from(ctx: typer.Context, **cli: Any) -> Settings:
    """Resolve settings with the root options (--home, --workflow) and this command's own options."""
    root = ctx.find_root().params
    overrides = {k: v for k, v in cli.items() if v is not None}
    if root.get("home") is not None:
        overrides["home"] = root["home"]
    workflow: Optional[Path] = root.get("workflow")
    return load_settings(workflow=workflow, cli=overrides)
