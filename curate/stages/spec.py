"""A stage is declared once: an options dataclass, a function and a summary printer.

Both the typer command and the workflow YAML are derived from that declaration, so a default or a
help text lives in one place (before, ``teacher train`` restated TrainConfig's defaults as option
defaults and the workflow kept its own adapter per stage, and the two drifted apart silently).

Options are plain dataclass fields. ``field(metadata=...)`` carries what the command line needs:

- ``help``: the option's help text;
- ``flag``: the option's name when it is not ``--field-name``; ``argument``: a positional argument;
- ``min`` / ``max``: bounds the command line enforces;
- ``setting``: the field falls back to that machine setting (``Settings.batch_size`` ...) when not
  given, so settings < workflow ``settings:`` < env < an explicit option keeps its order;
- ``cli=False``: workflow-only (or internal) fields.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

from curate.exceptions import CurateError
from curate.options import option

__all__ = ["Stage", "StageContext", "option", "options_from_params", "printer", "resolve_settings", "typer_command"]


@dataclass
class StageContext:
    """What a stage gets besides its options: resolved settings and where to report."""

    settings: Any  # curate.settings.Settings (kept light: this module is imported by `curate --help`)
    base: Path = field(default_factory=Path.cwd)  # relative paths resolve here (the workflow's folder)
    say: Callable[[str], None] = lambda _msg: None
    progress: Callable[[int], None] | None = None
    no_wait: bool = False  # the workflow's --no-wait: a review wait continues with what is reviewed so far
    workflow: str | None = None  # the workflow file, for the "how to continue" line

    def path(self, value: Path | str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()


@dataclass(frozen=True)
class Stage:
    """One step of the loop: ``run(context, options) -> summary``; ``human`` prints the summary."""

    name: str  # its key in a workflow YAML
    command: str  # its command line, e.g. "teacher train"
    options: type
    run: Callable[[StageContext, Any], dict[str, Any]]
    help: str
    human: Callable[[Any], None] | None = None
    progress: str | None = None  # label of a progress bar, when the stage reports progress


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.name.startswith("_")]


def options_from_params(stage: Stage, params: dict[str, Any], where: str) -> Any:
    """Workflow parameters -> the stage's options; an unknown or mistyped key is an error, not ignored."""
    hints = typing.get_type_hints(stage.options)
    known = {f.name: f for f in _fields(stage.options)}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise CurateError(f"{where}: stage {stage.name!r} has no option {', '.join(map(repr, unknown))} "
                          f"(it takes: {', '.join(sorted(known))})")
    values = {}
    for name, raw in params.items():
        values[name] = _coerce(raw, hints[name], f"{where}: {stage.name}.{name}")
    try:
        return stage.options(**values)
    except TypeError as exc:  # a required option left out
        raise CurateError(f"{where}: stage {stage.name!r}: {exc}") from None


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(T, optional) for T, Optional[T] and T | None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, False


def _coerce(raw: Any, hint: Any, where: str) -> Any:
    base, optional = _base_type(hint)
    if raw is None:
        if optional:
            return None
        raise CurateError(f"{where}: must not be empty")
    try:
        if base is Path:
            return Path(str(raw))
        if base is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
                return str(raw).lower() in ("true", "yes", "1", "on")
            raise ValueError(raw)
        if base in (int, float, str):
            if base is int and isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return base(raw)
    except (TypeError, ValueError):
        raise CurateError(f"{where}: {raw!r} is not a valid {getattr(base, '__name__', base)}") from None
    return raw


def resolve_settings(stage: Stage, opts: Any, settings: Any) -> Any:
    """Settings with the stage's given setting-backed options applied (e.g. --dataset, --device)."""
    given = {f.metadata["setting"]: getattr(opts, f.name) for f in _fields(stage.options)
             if f.metadata.get("setting") and getattr(opts, f.name) is not None}
    return dataclasses.replace(settings, **given) if given else settings


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
    cli_fields = [f for f in _fields(stage.options) if f.metadata.get("cli", True)]
    for f in sorted(cli_fields, key=lambda f: not f.metadata.get("argument")):  # arguments first
        base, optional = _base_type(hints[f.name])
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

        json_mode = values.pop("json_")
        with reporter(json_mode, stage.human or _default_human) as rep:
            opts = stage.options(**values, **(fixed or {}))
            settings_over = {f.metadata["setting"]: values[f.name] for f in cli_fields if f.metadata.get("setting")}
            settings = settings_from(ctx, **settings_over)
            if stage.progress:
                with rep.progress(None, stage.progress) as bar:
                    rep.update(**stage.run(StageContext(settings, say=rep.say, progress=bar.advance), opts))
            else:
                rep.update(**stage.run(StageContext(settings, say=rep.say), opts))
            if rep.summary.get("warning"):
                rep.say(f"warning: {rep.summary['warning']}")

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc or stage.help
    command.__name__ = stage.name
    return command


def printer(module: str, name: str) -> Callable[[Any], None]:
    """A summary printer that lives in a command module, imported only when a summary is printed
    (the declarations stay importable without typer and rich)."""

    def human(r: Any) -> None:
        import importlib

        getattr(importlib.import_module(module), name)(r)

    return human


def _default_human(r: Any) -> None:
    r.say(", ".join(f"{k}={v}" for k, v in r.summary.items() if not isinstance(v, (dict, list))))
