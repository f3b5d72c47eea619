"""AffectNet, in the four layouts found in the wild (the codes they carry map to emotions in curate/taxonomy.py).

1. ``original``: Manually_Annotated_Images/<sub>/<name>.jpg + training.csv / validation.csv
2. ``npy``: train_set|val_set/images/<id>.jpg + annotations/<id>_exp.npy (+ _val, _aro, _lnd)
3. ``class-folders``: Train|Test/<class>/*.jpg, optional labels.csv (pth, label, relFCs) that wins
4. ``yolo``: data.yaml (names, train/val/test) + <split>/images + <split>/labels/*.txt
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from curate import taxonomy as tx
from curate.sources._base import (
    MAX_ANNOTATION_BYTES,
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

_CSV_SPLITS = {"training.csv": "train", "validation.csv": "val"}
_CSV_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks", "expression")


# ---------------------------------------------------------------- 1. original release
def _find_original(root: Path) -> tuple[Path | None, dict[str, Path]]:
    images = next((p for p in (root / "Manually_Annotated_Images", root / "Manually_Annotated" / "Manually_Annotated_Images") if p.is_dir()), None)
    csvs: dict[str, Path] = {}
    for folder in (root, root / "Manually_Annotated_file_lists", root / "Manually_Annotated"):
        for name in _CSV_SPLITS:
            if (folder / name).is_file() and name not in csvs:
                csvs[name] = folder / name
    return images, csvs


def _detect_original(root: Path) -> bool:
    images, csvs = _find_original(root)
    return images is not None and bool(csvs)


def _landmarks(text: str) -> list[tuple[float, float]] | None:
    values = [float(v) for v in text.replace(",", ";").split(";") if v.strip()]
    if len(values) != 136:
        raise ValueError(f"expected 136 landmark values, got {len(values)}")
    return list(zip(values[0::2], values[1::2]))


def _read_original(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    images, csvs = _find_original(root)
    assert images is not None
    annotated: set[str] = set()
    for csv_name, csv_split in _CSV_SPLITS.items():
        if csv_name not in csvs:
            continue
        csv_path = csvs[csv_name]
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = CsvRows(csv.reader(fh))
            rows = iter(reader)
            header = next(rows, None)
            if header is None or not set(_CSV_COLUMNS) <= {h.strip() for h in header}:
                detail = reader.error or f"missing columns {sorted(set(_CSV_COLUMNS) - set(header or []))}"
                yield Rejection(rel(csv_path, root), "malformed_annotation_file", detail)
                continue
            col = {h.strip(): i for i, h in enumerate(header)}
            for line_no, row in enumerate(rows, start=2):
                where = f"{rel(csv_path, root)}:{line_no}"
                if not row or not any(c.strip() for c in row):
                    continue
                try:
                    sub = row[col["subDirectory_filePath"]].strip()
                except IndexError:
                    yield Rejection(where, "malformed_annotation", "row too short")
                    continue
                if sub and outside(images / sub, images):
                    yield Rejection(sub, "outside_root", f"{where}: {sub!r} resolves outside {images}")
                    continue
                rel_path = rel(images / sub, root) if sub else where
                annotated.add(sub)
                if split != "all" and csv_split != split:
                    continue
                try:
                    code = int(float(row[col["expression"]]))
                    label = tx.from_code("affectnet", code)
                except (IndexError, ValueError) as exc:
                    reason = "label_out_of_range" if isinstance(exc, tx.UnknownLabel) and "out of range" in str(exc) else "malformed_annotation"
                    yield Rejection(rel_path, reason, f"{where}: {exc}")
                    continue
                try:
                    box = tuple(float(row[col[k]]) for k in ("face_x", "face_y", "face_width", "face_height"))
                    marks = _landmarks(row[col["facial_landmarks"]]) if row[col["facial_landmarks"]].strip() else None
                    valence = float(row[col["valence"]]) if "valence" in col and row[col["valence"]].strip() else None
                    arousal = float(row[col["arousal"]]) if "arousal" in col and row[col["arousal"]].strip() else None
                except (IndexError, ValueError) as exc:
                    yield Rejection(rel_path, "malformed_annotation", f"{where}: {exc}")
                    continue
                path = images / sub
                if not path.exists() and not path.is_symlink():
                    yield Rejection(rel_path, "missing_file", f"{where}: annotated image does not exist")
                    continue
                yield SourceRecord(
                    path=path, rel_path=rel_path, split=csv_split, label=label, source_label=str(code),
                    box=box, landmarks=marks,  # type: ignore[arg-type]
                    valence=None if valence is not None and valence < -1.5 else valence,  # -2 = uncertain/no-face
                    arousal=None if arousal is not None and arousal < -1.5 else arousal,
                )
            if reader.error:
                yield Rejection(rel(csv_path, root), "malformed_annotation_file", f"{reader.error}; the rows after it were not read")
    if split == "all":
        for path in iter_files(images):
            if rel(path, images) not in annotated:
                yield Rejection(rel(path, root), "no_annotation", "image not listed in any annotation csv")


# ---------------------------------------------------------------- 2. *_exp.npy release
def _npy_splits(root: Path) -> dict[str, Path]:
    return {split_name(d.name): d for d in sorted(root.iterdir()) if d.is_dir() and d.name in ("train_set", "val_set", "test_set")
            and (d / "images").is_dir() and (d / "annotations").is_dir()}  # type: ignore[misc]


def _detect_npy(root: Path) -> bool:
    return bool(_npy_splits(root))


def _load_array(path: Path):  # noqa: ANN202 - numpy array
    """A small annotation array; memory-mapped, so even an oversized file is not read to take one value."""
    import numpy as np

    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise ValueError(f"{path.stat().st_size} bytes, over the {MAX_ANNOTATION_BYTES}-byte limit for an annotation file")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _load_scalar(path: Path) -> str:
    value = _load_array(path)
    return str(value.reshape(-1)[0]) if value.size else ""


def _read_npy(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    import numpy as np

    for split_key, folder in _npy_splits(root).items():
        if split not in ("all", split_key):
            continue
        ann = folder / "annotations"
        for path in iter_files(folder / "images"):
            rel_path = rel(path, root)
            stem = path.stem
            exp = ann / f"{stem}_exp.npy"
            if not exp.is_file():
                yield Rejection(rel_path, "missing_annotation", f"{rel(exp, root)} not found")
                continue
            try:
                raw = _load_scalar(exp)
                label = tx.from_code("affectnet", raw)
            except tx.UnknownLabel as exc:
                yield Rejection(rel_path, "label_out_of_range" if "out of range" in str(exc) else "malformed_annotation", f"{rel(exp, root)}: {exc}")
                continue
            except (ValueError, OSError, EOFError) as exc:
                yield Rejection(rel_path, "malformed_annotation", f"{rel(exp, root)}: {exc}")
                continue
            extra: dict[str, float | None] = {}
            for key, suffix in (("valence", "_val"), ("arousal", "_aro")):
                f = ann / f"{stem}{suffix}.npy"
                try:
                    v = float(_load_scalar(f)) if f.is_file() else None
                except (ValueError, OSError, EOFError):
                    v = None
                extra[key] = None if v is not None and v < -1.5 else v
            marks = None
            lnd = ann / f"{stem}_lnd.npy"
            if lnd.is_file():
                try:
                    flat = np.asarray(_load_array(lnd), dtype=float).reshape(-1)
                    marks = list(zip(flat[0::2].tolist(), flat[1::2].tolist())) if flat.size == 136 else None
                except (ValueError, OSError, EOFError):
                    marks = None
            yield SourceRecord(path=path, rel_path=rel_path, split=split_key, label=label, source_label=str(int(float(raw))),
                               landmarks=marks, valence=extra["valence"], arousal=extra["arousal"])


# ---------------------------------------------------------------- 3. class-folder re-packs
def _class_split_dirs(root: Path) -> dict[str, Path]:
    out = {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and split_name(d.name) and any(_is_class_dir(c) for c in d.iterdir()):
            out[d.name] = d
    return out


def _is_class_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    try:
        tx.canonical(path.name)
        return True
    except tx.UnknownLabel:
        return False


def _detect_class_folders(root: Path) -> bool:
    return bool(_class_split_dirs(root)) and not (root / "data.yaml").is_file()


def _labels_csv(root: Path, split_dir: Path) -> tuple[dict[str, tuple[str, str]], list[Rejection]]:
    """relative path inside split_dir -> (csv label, raw text) from labels.csv, wherever it sits; and a rejection
    for a labels.csv that could not be read to its end."""
    table: dict[str, tuple[str, str]] = {}
    broken: list[Rejection] = []
    for csv_path in (root / "labels.csv", split_dir / "labels.csv"):
        if not csv_path.is_file():
            continue
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = CsvRows(csv.DictReader(fh))
            for row in reader:
                pth, label = (row.get("pth") or "").strip(), (row.get("label") or "").strip()
                if not pth or not label:
                    continue
                pth = pth.replace("\\", "/")
                # Some re-packs list paths relative to the root ("Train/anger/x.jpg"), others to the split.
                if pth.lower().startswith(split_dir.name.lower() + "/"):
                    pth = pth.split("/", 1)[1]
                elif csv_path.parent == root and "/" in pth and split_name(pth.split("/", 1)[0]):
                    continue  # a row of another split
                table[pth] = (label, label)
            if reader.error:
                broken.append(Rejection(rel(csv_path, root), "malformed_annotation_file", f"{reader.error}; the rows after it were not read"))
    return table, broken


def _read_class_folders(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    reported: set[str] = set()
    for dir_name, split_dir in _class_split_dirs(root).items():
        split_key = split_name(dir_name)
        if split not in ("all", split_key):
            continue
        overrides, broken = _labels_csv(root, split_dir)
        yield from (b for b in broken if b.rel_path not in reported)  # the root's labels.csv is read once per split
        reported.update(b.rel_path for b in broken)
        for path in iter_files(split_dir):
            if path.name == "labels.csv":
                continue
            rel_path = rel(path, root)
            inner = rel(path, split_dir)
            folder = inner.split("/", 1)[0] if "/" in inner else None
            try:
                folder_label = tx.canonical(folder) if folder else None
            except tx.UnknownLabel:
                folder_label = None
            extra = {}
            label, source_label = folder_label, folder
            if inner in overrides:
                raw = overrides[inner][1]
                try:
                    label = tx.canonical(raw) if not raw.isdigit() else tx.from_code("affectnet", raw)
                except tx.UnknownLabel as exc:
                    yield Rejection(rel_path, "label_out_of_range", f"labels.csv: {exc}")
                    continue
                source_label = raw
                if label != folder_label:
                    extra["label_disagreement"] = f"folder {folder!r} vs labels.csv {raw!r} (csv wins)"
            yield SourceRecord(path=path, rel_path=rel_path, split=split_key, label=label, source_label=source_label, extra=extra)


# ---------------------------------------------------------------- 4. YOLO re-packs
def _detect_yolo(root: Path) -> bool:
    return (root / "data.yaml").is_file()


def _read_yolo(root: Path, split: str, media: Path | None = None) -> Iterator[Item]:
    import yaml

    try:
        spec = yaml.safe_load(read_small_text(root / "data.yaml")) or {}
    except (yaml.YAMLError, ValueError, OSError) as exc:
        yield Rejection("data.yaml", "malformed_annotation_file", " ".join(str(exc).split())[:300])
        return
    if not isinstance(spec, dict):
        yield Rejection("data.yaml", "malformed_annotation_file", f"expected a mapping (names, train, val, test), got {type(spec).__name__}")
        return
    names = spec.get("names") or []
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    base = root / spec["path"] if isinstance(spec.get("path"), str) and not Path(spec["path"]).is_absolute() else root
    for key in ("train", "val", "test"):
        if key not in spec or split not in ("all", key):
            continue
        declared = str(spec[key])
        # Roboflow-style files say "../train/images" while the folder sits beside data.yaml: try both.
        candidates = [Path(declared) if Path(declared).is_absolute() else base / declared,
                      root / declared.lstrip("./").removeprefix("../"), root / key / "images"]
        existing = [c for c in candidates if c.is_dir()]
        images_dir = next((c for c in existing if not outside(c, root)), None)
        if images_dir is None:
            if existing:
                yield Rejection(f"data.yaml:{key}", "outside_root", f"{declared} resolves outside {root}")
            else:
                yield Rejection(f"data.yaml:{key}", "missing_folder", f"{declared} not found")
            continue
        labels_dir = images_dir.parent / "labels"
        for path in iter_files(images_dir):
            rel_path = rel(path, root)
            label_file = labels_dir / f"{path.stem}.txt"
            if not label_file.is_file():
                yield Rejection(rel_path, "missing_annotation", f"{rel(label_file, root)} not found")
                continue
            try:
                lines = [ln.split() for ln in read_small_text(label_file).splitlines() if ln.strip()]
            except (ValueError, OSError) as exc:
                yield Rejection(rel_path, "malformed_annotation", f"{rel(label_file, root)}: {exc}")
                continue
            try:
                cls, cx, cy, w, h = int(lines[0][0]), *map(float, lines[0][1:5])
            except (IndexError, ValueError):
                yield Rejection(rel_path, "malformed_annotation", f"{rel(label_file, root)}: expected 'cls cx cy w h'")
                continue
            if not 0 <= cls < len(names):
                yield Rejection(rel_path, "label_out_of_range", f"{rel(label_file, root)}: class {cls} not in names[0..{len(names) - 1}]")
                continue
            try:
                label = tx.canonical(str(names[cls]))
            except tx.UnknownLabel as exc:
                yield Rejection(rel_path, "unknown_class", f"data.yaml names[{cls}]: {exc}")
                continue
            yield SourceRecord(path=path, rel_path=rel_path, split=key, label=label, source_label=str(names[cls]),
                               box=(cx, cy, w, h), box_units="yolo", extra={"faces_in_label_file": len(lines)} if len(lines) > 1 else {})


LAYOUTS = [
    Layout("affectnet", "original", "Manually_Annotated_Images/ + training.csv/validation.csv", _detect_original, _read_original),
    Layout("affectnet", "npy", "train_set|val_set/{images,annotations} with <id>_exp.npy", _detect_npy, _read_npy),
    Layout("affectnet", "yolo", "data.yaml + <split>/images + <split>/labels/*.txt", _detect_yolo, _read_yolo),
    Layout("affectnet", "class-folders", "Train|Test/<class>/*.jpg (+ optional labels.csv)", _detect_class_folders, _read_class_folders),
]
