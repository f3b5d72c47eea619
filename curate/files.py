"""Atomic file writes and content digests: the two file primitives every layer uses.

Pure (standard library only) and at the bottom of the import graph, so checkpoints, manifests,
run plans, reports and the Label Studio pidfile can all write atomically without importing each
other (``models.checkpoint`` used to hold these, which made ``manifest -> checkpoint`` part of an
import circle).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["atomic_write_bytes", "file_sha256"]


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename, so a reader sees the old file or the new one.

    The temp name carries the process and thread ids: two writers of the same path never share a temp file.
    ``durable=False`` skips the fsync, for files that can be made again (the 35,887 PNGs of a fer2013.csv)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    tmp.replace(path)


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks (checkpoints are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
