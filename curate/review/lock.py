"""One lock per dataset on this machine for the steps that must not interleave.

Two pushes would both create tasks for the same samples; two FiftyOne mirrors would race on
re-saving the same saved views (FiftyOne deletes, then re-creates a view it overwrites). The
ledger needs no lock: its writes are insert-or-ignore on natural keys.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

__all__ = ["review_lock"]


@contextlib.contextmanager
def review_lock(home: Path, dataset: str) -> Iterator[None]:
    """Hold the dataset's review lock (an flock: the kernel releases it even when the holder is killed -9)."""
    path = home / "locks" / f"review-{dataset}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
