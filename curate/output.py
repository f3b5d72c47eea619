"""How every command talks: human text, progress bars, one-line errors and the ``--json`` summary.

The contract scripts rely on: with ``--json`` the last line on stdout is one JSON
object (``"ok": true|false``); human text and progress go to stderr then, so
stdout stays machine-readable. Everything printed passes through redaction.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from curate.exceptions import CurateError
from curate.secrets import redact

__all__ = ["Reporter", "reporter"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


@dataclass
class Reporter:
    """Collects a command's summary and prints text the right way for the chosen mode."""

    json_mode: bool
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from rich.console import Console

        # Human text goes to stdout normally, to stderr in --json mode.
        self.console = Console(file=sys.stderr if self.json_mode else sys.stdout, highlight=False, soft_wrap=True)
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def say(self, message: str) -> None:
        """One line of human output (markup allowed), secrets masked."""
        self.console.print(redact(message))

    def progress(self, total: int | None, description: str) -> "ProgressTask":
        """A rich progress bar on stderr; use as a context manager and call ``advance(n)``."""
        return ProgressTask(self.err, total, description)

    def update(self, **values: Any) -> None:
        self.summary.update(values)

    def print_json(self) -> None:
        payload = {"ok": True, **self.summary}
        sys.stdout.write(redact(json.dumps(_jsonable(payload), sort_keys=False)) + "\n")
        sys.stdout.flush()


class ProgressTask:
    """Thin wrapper so callers never import rich themselves."""

    def __init__(self, console: Any, total: int | None, description: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=not console.is_terminal,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> "ProgressTask":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)


def missing_package_message(exc: ImportError) -> str:
    import re

    text = str(exc).splitlines()[0] if str(exc) else ""
    wanted = getattr(exc, "name", None)
    m = re.search(r"install the ([A-Za-z0-9_.\-]+)", text)
    package = m.group(1) if m else wanted
    return f"missing optional package {package or '?'}: {text or 'import failed'}" + (f" (pip install {package})" if package else "")


def _fail(rep: "Reporter", json_mode: bool, message: str) -> None:
    message = redact(message)
    sys.stderr.write(f"error: {message}\n")
    if json_mode:
        sys.stdout.write(redact(json.dumps({"ok": False, "error": message, **_jsonable(rep.summary)})) + "\n")


@contextlib.contextmanager
def reporter(json_mode: bool, human: Callable[[Reporter], None] | None = None) -> Iterator[Reporter]:
    """Run a command body: print its summary at the end, or turn a CurateError into exit code 2.

    ``human`` renders the summary for people when not in ``--json`` mode.
    """
    import typer

    rep = Reporter(json_mode)
    try:
        yield rep
    except CurateError as exc:
        _fail(rep, json_mode, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise typer.Exit(exc.exit_code) from None
    except ImportError as exc:
        # An optional package a command needs is missing (FiftyOne's eta raises PackageError, an ImportError):
        # one line saying which and how to get it, never a traceback.
        _fail(rep, json_mode, missing_package_message(exc))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        if json_mode:
            sys.stdout.write(json.dumps({"ok": False, "error": "interrupted"}) + "\n")
        raise typer.Exit(130) from None
    if json_mode:
        rep.print_json()
    elif human is not None:
        human(rep)
