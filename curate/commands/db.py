"""`curate db`: apply, roll back and inspect ledger migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.commands.common import JsonOption, settings_from
from curate.output import reporter
from curate.secrets import redact_url

app = typer.Typer(help="Ledger schema migrations (Alembic, db/migrations/).", no_args_is_help=True)


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    json_: JsonOption = False,
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from curate.store.sql import session

    with reporter(json_, lambda r: r.say(f"database {r.summary['database']} at revision {r.summary['revision']}")) as out:
        settings = settings_from(ctx)
        before = session.current_revision(settings.database_url)
        after = session.upgrade(settings.database_url, revision)
        out.update(database=redact_url(settings.database_url), previous=before, revision=after)


@app.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision ('-1' = one step, 'base' = empty).")] = "-1",
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: a downgrade drops the tables and columns it rolls back, "
                                                     "with the ledger rows in them.")] = False,
    json_: JsonOption = False,
) -> None:
    """Roll migrations back to REVISION (default: one step). Asks for --yes: it can drop ledger history."""
    from curate.exceptions import CurateError
    from curate.store.sql import session

    with reporter(json_, lambda r: r.say(f"database {r.summary['database']} at revision {r.summary['revision']}")) as out:
        settings = settings_from(ctx)
        before = session.current_revision(settings.database_url)
        if not yes and before is not None:
            raise CurateError(f"downgrading {redact_url(settings.database_url)} from {before} to {revision} drops what those migrations "
                              f"added, ledger rows included; back it up, then re-run with --yes")
        after = session.downgrade(settings.database_url, revision)
        out.update(database=redact_url(settings.database_url), previous=before, revision=after)


@app.command()
def current(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Show the revision the database is at and the newest one available."""
    from curate.store.sql import session

    def human(r) -> None:  # noqa: ANN001
        state = "up to date" if r.summary["up_to_date"] else "needs `curate db upgrade`"
        r.say(f"database {r.summary['database']}: revision {r.summary['revision']} (head {r.summary['head']}, {state})")

    with reporter(json_, human) as out:
        settings = settings_from(ctx)
        rev = session.current_revision(settings.database_url)
        head = session.head_revision()
        out.update(database=redact_url(settings.database_url), revision=rev, head=head, up_to_date=rev == head)
