"""``option()``: a dataclass field carrying what the command line needs (help, flag, bounds, setting); ``base_type``:
the type under an optional hint, read alike by the stage options and the training recipe's own parser.

Kept in a module of its own, importing nothing of curate, so the recipe's configs
(curate/models/config.py) and the stage declarations (curate/stages/) can both use it without an
import cycle. The metadata keys are described in curate/stages/spec.py.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any

__all__ = ["base_type", "option"]


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None, minimum: float | None = None,  # noqa: A002
           maximum: float | None = None, argument: bool = False, setting: str | None = None, cli: bool = True,
           default_factory: Any = dataclasses.MISSING, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with what the command line and the workflow need to know about it.

    ``choices``: the only values it takes, declared once; the command line and the workflow check refuse any other
    before a stage runs (curate/stages/spec.py ``check_values``)."""
    meta = {"help": help, "flag": flag, "min": minimum, "max": maximum, "argument": argument, "setting": setting, "cli": cli,
            "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def base_type(hint: Any) -> tuple[Any, bool]:
    """The type under an optional hint: (T, optional) for T, Optional[T] and T | None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, False
