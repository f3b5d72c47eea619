"""`curate labelstudio serve|stop|status`: the embedded Label Studio server for one machine."""

from __future__ import annotations

import typer

from curate.commands.common import JsonOption, settings_from
from curate.output import reporter

app = typer.Typer(help="The embedded Label Studio server (own venv under CURATE_HOME, loopback only).", no_args_is_help=True)


@app.command()
def stop(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Stop the embedded server started by `serve`."""
    with reporter(json_, lambda r: r.say("stopped" if r.summary["stopped"] else r.summary["reason"])) as out:
        from curate.review import server

        out.update(**server.stop(settings_from(ctx).home))


@app.command()
def status(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Whether the embedded server is up and healthy."""
    with reporter(json_, lambda r: r.say(f"running at {r.summary['url']}" if r.summary["running"] else "not running")) as out:
        from curate.review import server

        out.update(**server.status(settings_from(ctx).home))
