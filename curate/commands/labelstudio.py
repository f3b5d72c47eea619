"""`curate labelstudio serve|stop|status`: the embedded Label Studio server for one machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.commands.common import JsonOption, settings_from
from curate.output import Reporter, reporter

app = typer.Typer(help="The embedded Label Studio server (own venv under CURATE_HOME, loopback only).", no_args_is_help=True)


def _serve_human(r: Reporter) -> None:
    s = r.summary
    state = "already running" if s.get("already_running") else "started"
    r.say(f"Label Studio {state}: {s['url']} (serving images under {s['data_root']})")
    if "username" in s:
        r.say(f"log in as {s['username']}; password and API token ({s['token_hint']}) are in {s['credentials_file']} (mode 0600)")


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port")] = 8080,
    data_root: Annotated[Path, typer.Option("--data-root", help="The folder holding the dataset's images: served as local files "
                                            "(not /, $HOME or a folder containing CURATE_HOME).")] = ...,
    json_: JsonOption = False,
) -> None:
    """Install (first use), start and wait for Label Studio on 127.0.0.1; print the URL and how to log in."""
    with reporter(json_, _serve_human) as out:
        from curate.review import server

        s = settings_from(ctx)
        out.update(**server.serve(s.home, port, data_root.expanduser(), say=out.say))


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
