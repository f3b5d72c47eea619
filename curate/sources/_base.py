"""What every source yields: plain records (one per image) or rejections (with a reason).

Sources only read annotations and list files; they never decode images. Decoding,
hashing and scoring happen in the ingest workers, so a source stays cheap to run and
trivial to test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Union

from curate.exceptions import CurateError

__all__ = [
    "SPLIT_NAMES",
    "SourceRecord",
    "Rejection",
    "Item",
    "Layout",
    "SourceError",
    "iter_files",
    "split_name",
    "rel",
    "CsvRows",
    "read_small_text",
    "MAX_ANNOTATION_BYTES",
]

#: The largest annotation file read whole (data.yaml, a RAF-DB list, a YOLO label file, a .npy value). The
#: real ones are far smaller (RAF-DB's list: 0.4 MB); a larger one is refused, not read into memory.
MAX_ANNOTATION_BYTES = 64 << 20

#: Folder names that mean a split, in the spellings the re-packs use.
SPLIT_NAMES = {
    "train": "train", "training": "train", "train_set": "train",
    "val": "val", "valid": "val", "validation": "val", "val_set": "val",
    "test": "test", "testing": "test", "test_set": "test",
}


class SourceError(CurateError):
    """The root itself cannot be used (missing, unreadable, no known layout)."""


@dataclass
class SourceRecord:
    """One image and everything its annotation says about it."""

    path: Path  # absolute
    rel_path: str  # relative to the dataset root, '/'-separated: part of the sample identity
    split: str | None
    label: str | None  # canonical emotion, None = unlabeled or not an emotion
    source_label: str | None  # the dataset's own label or code, as text
    box: tuple[float, float, float, float] | None = None  # x, y, w, h in pixels ("px") or normalized centre ("yolo")
    box_units: str = "px"
    landmarks: list[tuple[float, float]] | None = None  # pixels
    valence: float | None = None
    arousal: float | None = None
    subject: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # usage, label_disagreement, ...


@dataclass(frozen=True)
class Rejection:
    """An input that will not become a sample, and why (``reason`` is a short stable code)."""

    rel_path: str
    reason: str
    detail: str = ""


Item = Union[SourceRecord, Rejection]


@dataclass(frozen=True)
class Layout:
    """A registered on-disk layout: ``detect(root)`` says whether it fits, ``read(root, split, media)`` yields items.

    ``media`` is where a layout that stores pixels in an annotation file (fer2013.csv) writes them as images."""

    dataset: str  # affectnet, fer2013, ckplus, rafdb, folder
    name: str
    description: str
    detect: Callable[[Path], bool]
    read: Callable[[Path, str, Path | None], Iterator[Item]]


def iter_files(root: Path) -> Iterator[Path]:
    """Every file (or dangling link) under ``root``, sorted, without following directory links."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root``; a path that is not under it keeps its own text (never a crash)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def outside(path: Path, root: Path) -> bool:
    """Whether ``path``, with ``..`` and symlinks resolved, lies outside ``root``.

    Annotation files name images by path (AffectNet's subDirectory_filePath, RAF-DB's list, YOLO's
    data.yaml); a hostile or careless re-pack can name ``../../secret.jpg`` or ``/etc/passwd``. Such
    entries are rejected as ``outside_root``, never read."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, base]) != base


def split_name(name: str) -> str | None:
    return SPLIT_NAMES.get(name.strip().lower())



def read_small_text(path: Path, limit: int = MAX_ANNOTATION_BYTES) -> str:
    """A whole annotation file as text, refused with ``ValueError`` (its size and the limit) when it is over ``limit``."""
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{size} bytes, over the {limit}-byte limit for an annotation file")
    return path.read_text(encoding="utf-8", errors="replace")


class CsvRows:
    """The rows of a ``csv.reader``/``DictReader``; a ``csv.Error`` (a field over the csv module's 128 KiB limit, a NUL
    byte) ends the iteration and is kept in ``error`` ("line N: why") for the caller to report as a rejection,
    instead of escaping as a traceback halfway through an ingest."""

    def __init__(self, reader: Any) -> None:
        self.reader, self.error = reader, None

    def __iter__(self) -> Iterator[Any]:
        import csv

        while True:
            try:
                row = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.error = f"line {self.reader.line_num}: {exc}"
                return
            yield row
