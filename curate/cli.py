"""The `curate` command line. Thin: parse options, call a stage, print progress and a summary.

Command modules import their heavy libraries (torch, fiftyone, sqlalchemy) inside
the command bodies, so `curate --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate import __version__
from curate.commands import app as app_cmd
from curate.commands import db, ingest, labelstudio, models, review, run, status
from curate.commands.stage_command import typer_command
from curate.sources import DATASETS, describe_kind
from curate.stages import STAGES

app = typer.Typer(
    name="curate",
    help="Data curation and active labeling for facial expression recognition.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# The stages of the loop: each command is derived from its declaration (curate/stages), like the workflow stages.
for _kind in DATASETS:
    ingest.app.command(_kind)(typer_command(STAGES["ingest"], fixed={"kind": _kind}, doc=describe_kind(_kind)))
app.add_typer(ingest.app, name="ingest")
app.command("quality")(typer_command(STAGES["quality"]))
models.teacher_app.command("train")(typer_command(STAGES["teacher"]))
app.add_typer(models.teacher_app, name="teacher")
app.add_typer(models.manifest_app, name="manifest")
app.command("prelabel")(typer_command(STAGES["prelabel"]))
app.command("retrain")(typer_command(STAGES["retrain"]))
app.command("export")(typer_command(STAGES["export"]))
app.command("compare")(typer_command(STAGES["compare"]))
app.command("errors")(typer_command(STAGES["errors"]))
app.command("report")(typer_command(STAGES["report"]))
app.command("app")(app_cmd.app)
app.command("run")(run.run)
labelstudio.app.command("serve")(typer_command(STAGES["labelstudio"]))
app.add_typer(labelstudio.app, name="labelstudio")
review.app.command("push")(typer_command(STAGES["review_push"]))
review.app.command("pull")(typer_command(STAGES["review_pull"]))
app.add_typer(review.app, name="review")
app.add_typer(db.app, name="db")
app.command("status")(status.status)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    home: Annotated[Optional[Path], typer.Option("--home", help="Override CURATE_HOME for this run.")] = None,
    workflow: Annotated[
        Optional[Path], typer.Option("--workflow", "-w", help="Workflow YAML whose 'settings:' apply (below env and CLI).")
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Data curation and active labeling for facial expression recognition."""
    _configure_logging()
    if home is not None:  # the embedded FiftyOne database lives under it too (curate/store/database.py)
        import os

        os.environ["CURATE_HOME"] = str(home.expanduser().resolve())


def _configure_logging() -> None:
    """Library logs go to stderr at CURATE_LOG_LEVEL (default WARNING), always through secret redaction."""
    import logging
    import os

    from curate.secrets import install_log_redaction

    level = getattr(logging, os.environ.get("CURATE_LOG_LEVEL", "WARNING").upper(), logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Libraries that set their own loggers to INFO (FiftyOne prints "Computing uniqueness..." itself) still propagate
    # those records to the root handler, which would print each a second time: the handler filters by level too.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    install_log_redaction()


if __name__ == "__main__":
    app()
