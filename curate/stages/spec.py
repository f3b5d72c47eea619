"""A stage is declared once: an options dataclass, a function and a summary printer.

Both the typer command (curate/commands/stage_command.py) and the workflow YAML (curate/workflow.py)
are derived from that declaration, so a default or a help text lives in one place (before, ``teacher
train`` restated TrainConfig's defaults as option defaults and the workflow kept its own adapter per
stage, and the two drifted apart silently).

Options are plain dataclass fields. ``field(metadata=...)`` carries what the command line needs:

- ``help``: the option's help text;
- ``flag``: the option's name when it is not ``--field-name``; ``argument``: a positional argument;
- ``min`` / ``max``: bounds, and ``choices``: the only values taken; the command line and the workflow check both
  enforce them (``check_values``);
- ``setting``: the field falls back to that machine setting (``Settings.batch_size`` ...) when not
  given, so settings < workflow ``settings:`` < env < an explicit option keeps its order;
- ``cli=False``: workflow-only (or internal) fields.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from curate.exceptions import CurateError
from curate.options import base_type, option

__all__ = ["Stage", "StageContext", "base_type", "option", "option_fields", "options_from_params", "resolve_settings"]


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
    # A stage that writes a dataset runs under its (dataset, stage) writer lock (curate/store/sql/writer_lock.py);
    # ``dataset_of`` names the dataset when it is not simply the resolved ``settings.dataset``.
    writes: bool = False
    dataset_of: Callable[[StageContext, Any], str] | None = None

    def execute(self, ctx: StageContext, opts: Any) -> dict[str, Any]:
        """``run``, under the writer lock when the stage writes: the one way the CLI and workflows start a stage."""
        if not self.writes:
            return self.run(ctx, opts)
        from curate.store.sql.writer_lock import writer_lock

        dataset = self.dataset_of(ctx, opts) if self.dataset_of else resolve_settings(self, opts, ctx.settings).dataset
        with writer_lock(ctx.settings.database_url, dataset, self.name):
            return self.run(ctx, opts)


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of an options dataclass a user may set (a leading underscore marks internal ones)."""
    return [f for f in dataclasses.fields(cls) if not f.name.startswith("_")]


def options_from_params(stage: Stage, params: dict[str, Any], where: str) -> Any:
    """Workflow parameters -> the stage's options; an unknown or mistyped key is an error, not ignored."""
    hints = typing.get_type_hints(stage.options)
    known = {f.name: f for f in option_fields(stage.options)}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise CurateError(f"{where}: stage {stage.name!r} has no option {', '.join(map(repr, unknown))} "
                          f"(it takes: {', '.join(sorted(known))})")
    values = {}
    for name, raw in params.items():
        values[name] = _coerce(raw, hints[name], f"{where}: {stage.name}.{name}")
    if values.get("dataset") is not None:
        from curate.settings import check_dataset_name

        check_dataset_name(values["dataset"], f"{where}: {stage.name}")
    try:
        opts = stage.options(**values)
    except TypeError as exc:  # a required option left out
        raise CurateError(f"{where}: stage {stage.name!r}: {exc}") from None
    check_values(opts, f"{where}: {stage.name}")
    return opts


def check_values(opts: Any, where: str | None = None) -> None:
    """Refuse a value outside an option's declared ``choices`` or bounds, naming the valid ones: the same check for
    the command line (``where`` None: the option is named by its flag) and for a workflow file (``where`` names the
    file and stage), made before any stage runs."""
    for f in option_fields(type(opts)):
        value, meta = getattr(opts, f.name), f.metadata
        if value is None:
            continue
        name = f"{where}.{f.name}" if where else f"--{f.name.replace('_', '-')}"
        choices = meta.get("choices")
        if choices and value not in choices:
            raise CurateError(f"{name} {value!r} is not one of {', '.join(choices)}")
        low, high = meta.get("min"), meta.get("max")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = " and ".join(p for p in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "") if p)
                raise CurateError(f"{name} {value!r} must be {bounds}")


def _coerce(raw: Any, hint: Any, where: str) -> Any:
    base, optional = base_type(hint)
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
    given = {f.metadata["setting"]: getattr(opts, f.name) for f in option_fields(stage.options)
             if f.metadata.get("setting") and getattr(opts, f.name) is not None}
    return dataclasses.replace(settings, **given) if given else settings
