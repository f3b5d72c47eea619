"""The one exception type the CLI turns into a one-line error and exit code 2."""

from __future__ import annotations

__all__ = ["CurateError"]


class CurateError(Exception):
    """A failure the user can act on. The message is one line and names the file/URL and the reason."""

    exit_code = 2
