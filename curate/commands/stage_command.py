"""Stage declarations (curate/stages) as typer commands: the command line's half of "declared once".

Each stage's options dataclass becomes the command's options, with their defaults, help text and
bounds; the stage's own summary printer prints the result. Kept in the command layer because it is
the only code that needs typer and rich; the declarations stay importable without them.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Annotated, Any, Callable, Optional

from curate.stages.spec import Stage, StageContext, base_type, option_fields

__all__ = ["typer_command"]


def _flags(f: dataclasses.Field, base: Any) -> list[str]:
    name = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    if base is bool and "/" not in name:
        name = f"{name}/--no-{name[2:]}"
    return [name, "-d"] if f.name == "dataset" else [name]


def typer_command(stage: Stage, fixed: dict[str, Any] | None = None, doc: str | None = None) -> Callable[..., None]:
    """A typer command whose options are the stage's fields, with their defaults and help; ``fixed`` sets
    workflow-only fields (the ingest kind of `curate ingest fer2013`)."""
    import typer

    from curate.commands.common import JsonOption

    hints = typing.get_type_hints(stage.options)
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    cli_fields = [f for f in option_fields(stage.options) if f.metadata.get("cli", True)]
    for f in sorted(cli_fields, key=lambda f: not f.metadata.get("argument")):  # arguments first
        base, optional = base_type(hints[f.name])
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else ...
        help_text = meta.get("help") or ""
        if meta.get("setting") and default is None:
            help_text += f" (default: settings.{meta['setting']})"
        bounds = {k: meta[k] for k in ("min", "max") if meta.get(k) is not None}
        if meta.get("argument"):
            info = typer.Argument(help=help_text, **bounds)
        else:
            info = typer.Option(*_flags(f, base), help=help_text, **bounds)
        annotation = Annotated[Optional[base] if optional else base, info]  # noqa: UP007 - typer reads Optional
        params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation))
    params.append(inspect.Parameter("json_", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False, annotation=JsonOption))

    def command(ctx: Any, **values: Any) -> None:
        from curate.commands.common import settings_from
        from curate.output import reporter
        from curate.stages.spec import check_values

        json_mode = values.pop("json_")
        with reporter(json_mode, stage.human or _default_human) as rep:
            opts = stage.options(**values, **(fixed or {}))
            check_values(opts)
            settings_over = {f.metadata["setting"]: values[f.name] for f in cli_fields if f.metadata.get("setting")}
            settings = settings_from(ctx, **settings_over)
            if stage.progress:
                with rep.progress(None, stage.progress) as bar:
                    rep.update(**stage.execute(StageContext(settings, say=rep.say, progress=bar.advance), opts))
            else:
                rep.update(**stage.execute(StageContext(settings, say=rep.say), opts))
            if rep.summary.get("warning"):
                rep.say(f"warning: {rep.summary['warning']}")

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc or stage.help
    command.__name__ = stage.name
    return command


def _default_human(r: Any) -> None:
    r.say(", ".join(f"{k}={v}" for k, v in r.summary.items() if not isinstance(v, (dict, list))))
