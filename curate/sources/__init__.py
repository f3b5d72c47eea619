"""Dataset sources: ``open_source(dataset, root)`` picks the registered layout that fits.

Adding a layout is one ``Layout`` in a module's ``LAYOUTS`` list; nothing else changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from curate.sources import affectnet, generic
from curate.sources._base import Item, Layout, Rejection, SourceError, SourceRecord

__all__ = ["DATASETS", "LAYOUTS", "Item", "Layout", "Rejection", "SourceError", "SourceRecord", "describe_kind", "detect", "open_source"]

LAYOUTS: list[Layout] = [*affectnet.LAYOUTS, *generic.LAYOUTS]
DATASETS: tuple[str, ...] = tuple(dict.fromkeys(layout.dataset for layout in LAYOUTS))


def describe_kind(dataset: str) -> str:
    """One line for ``curate ingest DATASET --help``: the layouts that are auto-detected, from their own descriptions."""
    layouts = [layout for layout in LAYOUTS if layout.dataset == dataset]
    return f"{dataset}: " + "; or ".join(layout.description for layout in layouts) + (" (auto-detected)." if len(layouts) > 1 else ".")


def _describe(root: Path) -> str:
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return "nothing readable"
    shown = ", ".join(entries[:8]) + (f", ... ({len(entries)} entries)" if len(entries) > 8 else "")
    return shown or "an empty folder"


def detect(dataset: str, root: Path) -> Layout:
    """The first registered layout of ``dataset`` that fits ``root``; a one-line error names all tried."""
    if dataset not in DATASETS:
        raise SourceError(f"unknown dataset kind {dataset!r}; known: {', '.join(DATASETS)}")
    if not root.exists():
        raise SourceError(f"{root}: does not exist")
    if not os.access(root, os.R_OK):
        raise SourceError(f"{root}: not readable")
    candidates = [layout for layout in LAYOUTS if layout.dataset == dataset]
    for layout in candidates:
        try:
            if layout.detect(root):
                return layout
        except OSError:
            continue
    tried = "; ".join(f"{c.name} ({c.description})" for c in candidates)
    raise SourceError(f"{root}: no {dataset} layout found. Looked for: {tried}. Found: {_describe(root)}")


def open_source(dataset: str, root: Path, split: str = "all", media: Path | None = None) -> tuple[Layout, Iterator[Item]]:
    """Detect the layout and return it with its (lazy) stream of records and rejections.

    ``media``: where images that exist only inside an annotation file (fer2013.csv pixels) are written."""
    if split not in ("all", "train", "val", "test"):
        raise SourceError(f"split {split!r} must be train, val, test or all")
    root = root.expanduser().absolute()
    layout = detect(dataset, root)
    return layout, layout.read(root, split, media)
