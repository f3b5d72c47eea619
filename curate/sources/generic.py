"""FER2013, CK+, RAF-DB and plain folders: the datasets with one layout each (FER2013 has two)."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from curate import taxonomy as tx
from curate.files import atomic_write_bytes
from curate.sources._base import (
    CsvRows,
    Item,
    Layout,
    Rejection,
    SourceRecord,
    iter_files,
    outside,
    read_small_text,
    rel,
    split_name,
)

__all__ = ["LAYOUTS"]


def _folder_label(name: str | None, table: dict[str, str] | None = None) -> str | None:
    if name is None:
        return None
    if table is not None and name.lower() in table:
        return table[name.lower()]
    try:
        return tx.canonical(name)
    except tx.UnknownLabel:
        return None


def _class_folder_records(root: Path, top: Path, split: str | None, table: dict[str, str] | None = None) -> Iterator[Item]:
    """Images under top/<class>/...; images outside an emotion folder are kept unlabeled."""
    for path in iter_files(top):
        inner = rel(path, top)
        folder = inner.split("/", 1)[0] if "/" in inner else None
        label = _folder_label(folder, table)
        yield SourceRecord(path=path, rel_path=rel(path, root), split=split, label=label, source_label=folder if label else None)


def _split_dirs(root: Path) -> dict[str, Path]:
    return {split_name(d.name): d for d in sorted(root.iterdir()) if d.is_dir() and split_name(d.name)}  # type: ignore[misc]


# ---------------------------------------------------------------- FER2013
_USAGE = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}


def _fer_csv(root: Path) -> Path | None:
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    for candidate in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv"):
        if candidate.is_file():
            return candidate
    return None


def _detect_fer_csv(root: Path) -> bool:
    return _fer_csv(root) is not None


def _write_png_atomic(path: Path, pixels: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", pixels)
    atomic_write_bytes(path, buf.tobytes(), durable=False)  # re-made from the csv when lost: no fsync per face


def _read_fer_csv(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    """Each csv row becomes a PNG (written once, atomically) under ``media`` (ingest: CURATE_HOME/media/<dataset>)."""
    csv_path = _fer_csv(root)
    assert csv_path is not None
    media = media or csv_path.parent / "fer2013-images"
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as fh:
        dict_reader = csv.DictReader(fh)
        try:
            fieldnames = dict_reader.fieldnames
        except csv.Error as exc:
            yield Rejection(csv_path.name, "malformed_annotation_file", f"line 1: {exc}")
            return
        if not fieldnames or not {"emotion", "pixels"} <= set(fieldnames):
            yield Rejection(csv_path.name, "malformed_annotation_file", f"columns {fieldnames} lack emotion/pixels")
            return
        reader = CsvRows(dict_reader)
        for line_no, row in enumerate(reader, start=2):
            where = f"{csv_path.name}:{line_no}"
            usage = (row.get("Usage") or "Training").strip()
            split_key = _USAGE.get(usage)
            if split_key is None:
                yield Rejection(where, "malformed_annotation", f"unknown Usage {usage!r}")
                continue
            if split not in ("all", split_key):
                continue
            try:
                label = tx.from_code("fer2013", row["emotion"])
            except tx.UnknownLabel as exc:
                yield Rejection(where, "label_out_of_range" if "out of range" in str(exc) else "malformed_annotation", str(exc))
                continue
            try:
                values = np.array((row.get("pixels") or "").split(), dtype=np.int32)
            except ValueError:
                yield Rejection(where, "malformed_annotation", "pixels are not integers")
                continue
            side = int(round(np.sqrt(values.size)))
            if values.size == 0 or side * side != values.size or values.min() < 0 or values.max() > 255:
                yield Rejection(where, "malformed_annotation", f"{values.size} pixel values do not form a square 8-bit image")
                continue
            pixels = values.reshape(side, side).astype(np.uint8)
            # Named by row *and* content: a corrected csv row gets a new file instead of silently keeping
            # the old pixels; files, once written, never change under a sample that was scored on them.
            digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:12]
            png = media / usage / f"{line_no - 2:05d}-{digest}.png"
            if not png.is_file():
                _write_png_atomic(png, pixels)
            yield SourceRecord(path=png, rel_path=f"{usage}/{png.name}", split=split_key, label=label,
                               source_label=str(row["emotion"]).strip(), extra={"usage": usage, "csv_row": line_no})
        if reader.error:
            yield Rejection(csv_path.name, "malformed_annotation_file", f"{reader.error}; the rows after it were not read")


def _detect_fer_folders(root: Path) -> bool:
    dirs = _split_dirs(root) if root.is_dir() else {}
    return "train" in dirs and any((dirs["train"] / c).is_dir() for c in ("angry", "happy", "neutral"))


def _read_fer_folders(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    for split_key, top in _split_dirs(root).items():
        if split not in ("all", split_key):
            continue
        for item in _class_folder_records(root, top, split_key):
            if isinstance(item, SourceRecord):
                prefix = item.path.name.split("_", 1)[0]
                if prefix in _USAGE:  # test = PublicTest + PrivateTest: keep which
                    item.extra["usage"] = prefix
            yield item


# ---------------------------------------------------------------- CK+
_SUBJECT = re.compile(r"^(S\d{3})_(\d{3})")


def _ck_top(root: Path) -> Path:
    return root / "CK+48" if (root / "CK+48").is_dir() else root


def _detect_ckplus(root: Path) -> bool:
    top = _ck_top(root)
    return top.is_dir() and any((top / c).is_dir() for c in ("sadness", "contempt", "anger"))


def _read_ckplus(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    if split not in ("all", "train"):
        return
    for item in _class_folder_records(root, _ck_top(root), "train", tx.CKPLUS):
        if isinstance(item, SourceRecord):
            m = _SUBJECT.match(item.path.name)
            item.subject = m.group(1) if m else None
            if m:
                item.extra["sequence"] = m.group(2)
        yield item


# ---------------------------------------------------------------- RAF-DB basic
def _raf_list(root: Path) -> Path | None:
    for candidate in (root / "EmoLabel" / "list_patition_label.txt", root / "basic" / "EmoLabel" / "list_patition_label.txt"):
        if candidate.is_file():
            return candidate
    return None


def _detect_rafdb(root: Path) -> bool:
    return _raf_list(root) is not None


def _read_rafdb(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    listing = _raf_list(root)
    assert listing is not None
    base = listing.parent.parent
    aligned, original = base / "Image" / "aligned", base / "Image" / "original"
    listed: set[str] = set()
    try:
        text = read_small_text(listing)
    except (ValueError, OSError) as exc:
        yield Rejection(rel(listing, root), "malformed_annotation_file", str(exc))
        return
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{rel(listing, root)}:{line_no}"
        parts = line.split()
        if len(parts) != 2:
            yield Rejection(where, "malformed_annotation", f"expected '<name> <code>', got {line.strip()!r}")
            continue
        name, code = parts
        split_key = "train" if name.startswith("train") else "test" if name.startswith("test") else None
        stem, ext = Path(name).stem, Path(name).suffix
        candidates = [aligned / f"{stem}_aligned{ext}", original / name]
        if any(outside(c, root) for c in candidates):
            if split in ("all", split_key):
                yield Rejection(name, "outside_root", f"{where}: {name!r} resolves outside {root}")
            continue
        path = next((c for c in candidates if c.exists()), candidates[0] if aligned.is_dir() else candidates[1])
        listed.add(path.name)
        if split not in ("all", split_key):
            continue
        try:
            label = tx.from_code("rafdb", code)
        except tx.UnknownLabel as exc:
            yield Rejection(rel(path, root), "label_out_of_range" if "out of range" in str(exc) else "malformed_annotation", f"{where}: {exc}")
            continue
        if not path.exists():
            yield Rejection(rel(path, root), "missing_file", f"{where}: listed image does not exist")
            continue
        yield SourceRecord(path=path, rel_path=rel(path, root), split=split_key, label=label, source_label=code)
    if split == "all":
        folder = aligned if aligned.is_dir() else original
        for path in iter_files(folder) if folder.is_dir() else []:
            if path.name not in listed:
                yield Rejection(rel(path, root), "no_annotation", "image not in list_patition_label.txt")


# ---------------------------------------------------------------- plain folders
def _read_folder(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    """<split>/<class>/*, <class>/* or unlabeled images anywhere below the root."""
    splits = _split_dirs(root)
    if splits:
        for split_key, top in splits.items():
            if split in ("all", split_key):
                yield from _class_folder_records(root, top, split_key)
        others = [d for d in sorted(root.iterdir()) if d not in splits.values()]
        for entry in others if split == "all" else []:
            for path in iter_files(entry) if entry.is_dir() else [entry]:
                yield SourceRecord(path=path, rel_path=rel(path, root), split=None, label=None, source_label=None)
        return
    if split in ("all", "train"):
        yield from _class_folder_records(root, root, None)


LAYOUTS = [
    Layout("fer2013", "csv", "fer2013.csv (emotion, pixels, Usage)", _detect_fer_csv, _read_fer_csv),
    Layout("fer2013", "class-folders", "train|test/<class>/*.jpg", _detect_fer_folders, _read_fer_folders),
    Layout("ckplus", "class-folders", "CK+48/<class>/S###_###_*.png", _detect_ckplus, _read_ckplus),
    Layout("rafdb", "basic", "EmoLabel/list_patition_label.txt + Image/aligned|original", _detect_rafdb, _read_rafdb),
    Layout("folder", "folders", "[<split>/]<class>/*.jpg, or unlabeled images", lambda root: root.is_dir(), _read_folder),
]
