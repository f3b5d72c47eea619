"""``option()``: a dataclass field carrying what the command line needs (help, flag, bounds, setting).

Kept in a module of its own, importing nothing of curate, so the recipe's configs
(curate/models/config.py) and the stage declarations (curate/stages/) can both use it without an
import cycle. The metadata keys are described in curate/stages/spec.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

__all__ = ["option"]


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None, minimum: float | None = None,  # noqa: A002
           maximum: float | None = None, argument: bool = False, setting: str | None = None, cli: bool = True,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with what the command line and the workflow need to know about it."""
    meta = {"help": help, "flag": flag, "min": minimum, "max": maximum, "argument": argument, "setting": setting, "cli": cli}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)
