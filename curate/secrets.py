"""Keep secrets out of output, logs and argv.

A :class:`Secret` never shows its value in ``repr``/``str``/f-strings, so it
cannot leak through a log call by accident. :func:`redact` is the last line of
defence for text that is about to be printed: every known secret value and the
password part of any URL are masked.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from typing import Iterable, Iterator

__all__ = ["Secret", "redact", "redact_url", "register", "register_url", "url_password", "RedactingFilter", "install_log_redaction", "child_env",
           "hidden_from_environ"]

# Environment variables that carry secrets: a child process that does not need them never sees them.
SECRET_ENV = ("LABEL_STUDIO_API_KEY", "CURATE_DB_URL", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN", "PGPASSWORD")

MASK = "********"
_known: set[str] = set()
_lock = threading.Lock()
# scheme://user:password@host  ->  scheme://user:********@host. The password part is SQLAlchemy's own
# URL grammar ([^@]*): it may hold '/', ':' or '?', so it runs to the '@' before the host.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
# ...?password=pw&...  (libpq and SQLAlchemy accept the password as a query parameter too)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<pw>[^&\s#'\"]+)", re.I)


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


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment minus every secret-bearing variable (and any variable holding a
    registered secret value), plus ``extra``: for children that need none of curate's secrets."""
    import os

    secret = _secret_names()
    return {**{k: v for k, v in os.environ.items() if k not in secret}, **(extra or {})}


def _secret_names() -> set[str]:
    """The environment variables that carry a secret: by name, or by holding a registered secret value."""
    import os

    with _lock:
        known = set(_known)
    return {k for k, v in os.environ.items() if k in SECRET_ENV or v in known}


@contextlib.contextmanager
def hidden_from_environ() -> Iterator[None]:
    """Take every secret-bearing variable out of ``os.environ`` while children that copy it start, then put them back.

    For children curate does not spawn itself (Ray's GCS server and raylet, a process pool's workers), where
    :func:`child_env` cannot be passed: they copy this process's environment when they start, and keep it."""
    import os

    saved = {k: os.environ[k] for k in _secret_names()}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def url_password(url: str) -> str | None:
    """The password a database URL carries (userinfo or ``?password=``), percent-decoded, or None."""
    from urllib.parse import unquote

    m = _URL_PASSWORD.search(url) or _QUERY_PASSWORD.search(url)
    return unquote(m["pw"]) if m else None


def register_url(url: str | None) -> None:
    """Register a URL's password (raw and percent-encoded) so it is masked wherever it appears, not only inside the URL."""
    if not url:
        return
    m = _URL_PASSWORD.search(url) or _QUERY_PASSWORD.search(url)
    if m:
        register(m["pw"])
        register(url_password(url))


def redact_url(url: str) -> str:
    """Mask the password of a URL (``postgresql://u:pw@h/db`` -> ``postgresql://u:********@h/db``, ``?password=pw`` too)."""
    out = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", out)


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
    """Attach :class:`RedactingFilter` to ``logger``'s handlers (root by default), once.

    For the root logger it also wraps the log-record factory, so records are redacted as they are
    made: handlers that libraries attach later (FiftyOne, httpx, the Label Studio SDK) see clean text too."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if logger is None and not getattr(logging.getLogRecordFactory(), "_curate_redacting", False):
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            record = previous(*args, **kwargs)
            RedactingFilter().filter(record)
            return record

        factory._curate_redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
