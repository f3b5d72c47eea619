"""Keep secrets out of output, logs and argv.

A :class:`Secret` never shows its value in ``repr``/``str``/f-strings, so it
cannot leak through a log call by accident. :func:`redact` is the last line of
defence for text that is about to be printed: every known secret value and the
password part of any URL are masked.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Iterable

__all__ = ["Secret", "redact", "redact_url", "register", "RedactingFilter", "install_log_redaction"]

MASK = "********"
_known: set[str] = set()
_lock = threading.Lock()
# scheme://user:password@host  ->  scheme://user:********@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?P<at>@)")


class Secret:
    """A string that refuses to be printed. Call :meth:`reveal` where the value is really needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        """The raw value: only for handing to a client library or a child's environment."""
        return self._value

    def hint(self) -> str:
        """A recognisable but useless fragment (last 4 characters) for 'which token is this'."""
        return f"{MASK}{self._value[-4:]}" if len(self._value) >= 12 else MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = lambda self: MASK  # noqa: E731 - str() and f-strings must mask too

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def register(value: str | None) -> None:
    """Remember a secret value so :func:`redact` masks it wherever it shows up."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact_url(url: str) -> str:
    """Mask the password of a URL (``postgresql://u:pw@h/db`` -> ``postgresql://u:********@h/db``)."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", url)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Mask URL passwords and every registered (and ``extra``) secret value in ``text``."""
    out = redact_url(text)
    with _lock:
        values = sorted(set(_known).union(v for v in extra if v), key=len, reverse=True)
    for value in values:
        out = out.replace(value, MASK)
    return out


class RedactingFilter(logging.Filter):
    """Logging filter that rewrites each record's final message through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach :class:`RedactingFilter` to ``logger``'s handlers (root by default), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
