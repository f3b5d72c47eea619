"""Every layout: labels land correctly mapped, splits kept, faults named, nothing dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.sources import Rejection, SourceError, SourceRecord, open_source
from tests import builders


def _read(kind: str, root: Path, split: str = "all", media: Path | None = None):  # noqa: ANN202
    layout, items = open_source(kind, root, split, media)
    items = list(items)
    records = {r.rel_path: r for r in items if isinstance(r, SourceRecord)}
    rejections = {r.rel_path: r for r in items if isinstance(r, Rejection)}
    assert len(records) + len(rejections) == len(items), "a path was yielded twice"
    return layout, records, rejections


@pytest.mark.parametrize(
    "kind,builder,layout_name",
    [
        ("affectnet", builders.affectnet_original, "original"),
        ("affectnet", builders.affectnet_npy, "npy"),
        ("affectnet", builders.affectnet_class_folders, "class-folders"),
        ("affectnet", builders.affectnet_yolo, "yolo"),
        ("fer2013", builders.fer2013_folders, "class-folders"),
        ("ckplus", builders.ckplus, "class-folders"),
        ("rafdb", builders.rafdb, "basic"),
        ("folder", builders.folder_unlabeled, "folders"),
    ],
)
def test_layout_labels_splits_and_faults(tmp_path: Path, kind: str, builder, layout_name: str) -> None:  # noqa: ANN001
    built = builder(tmp_path / "ds")
    layout, records, rejections = _read(kind, built.root)
    assert layout.name == layout_name
    assert {p: (r.label, r.split) for p, r in records.items()} == built.expected
    assert {p: r.reason for p, r in rejections.items()} == built.rejected


def test_fer2013_csv_rows_become_png_files(tmp_path: Path) -> None:
    built = builders.fer2013_csv(tmp_path / "fer")
    layout, records, rejections = _read("fer2013", built.root / "fer2013.csv", media=tmp_path / "media")
    assert layout.name == "csv"
    assert {p: (r.label, r.split) for p, r in records.items()} == built.expected
    assert {p: r.reason for p, r in rejections.items()} == built.rejected
    usages = {r.extra["usage"] for r in records.values() if r.split == "test"}
    assert usages == {"PublicTest", "PrivateTest"}
    assert all(r.path.is_file() and r.path.is_relative_to(tmp_path / "media") for r in records.values())


def test_fer2013_folders_keep_public_private_usage(tmp_path: Path) -> None:
    built = builders.fer2013_folders(tmp_path / "fer")
    _, records, _ = _read("fer2013", built.root)
    test_usage = {r.extra.get("usage") for r in records.values() if r.split == "test"}
    assert test_usage == {"PublicTest", "PrivateTest"}


def test_affectnet_original_keeps_boxes_landmarks_valence(tmp_path: Path) -> None:
    built = builders.affectnet_original(tmp_path / "an")
    _, records, _ = _read("affectnet", built.root)
    happy = records["Manually_Annotated_Images/101/img_train_1.jpg"]
    assert happy.box == (16.0, 16.0, 96.0, 96.0) and len(happy.landmarks) == 68
    assert happy.valence == 0.25 and happy.arousal == -0.5 and happy.source_label == "1"
    none = records["Manually_Annotated_Images/108/img_train_8.jpg"]
    assert none.label is None and none.valence is None  # -2 means "no value"


def test_affectnet_split_filter(tmp_path: Path) -> None:
    built = builders.affectnet_original(tmp_path / "an")
    _, records, _ = _read("affectnet", built.root, split="val")
    assert records and {r.split for r in records.values()} == {"val"}


def test_affectnet_npy_casts_string_values(tmp_path: Path) -> None:
    built = builders.affectnet_npy(tmp_path / "an")
    _, records, _ = _read("affectnet", built.root)
    r = records["train_set/images/101.jpg"]
    assert r.label == "neutral" and r.valence == 0.5 and r.arousal == -0.25 and len(r.landmarks) == 68


def test_class_folder_csv_wins_and_disagreement_is_recorded(tmp_path: Path) -> None:
    built = builders.affectnet_class_folders(tmp_path / "an")
    _, records, _ = _read("affectnet", built.root)
    flipped = [r for r in records.values() if "label_disagreement" in r.extra]
    assert len(flipped) == 1 and flipped[0].label == "surprise" and flipped[0].rel_path.startswith("Train/anger/")


def test_yolo_maps_class_names_not_codes(tmp_path: Path) -> None:
    built = builders.affectnet_yolo(tmp_path / "y")
    _, records, _ = _read("affectnet", built.root)
    r = next(r for r in records.values() if r.source_label == "Neutral")
    assert r.label == "neutral" and r.box_units == "yolo" and r.box[0] == 0.5


def test_ckplus_subject_ids(tmp_path: Path) -> None:
    built = builders.ckplus(tmp_path / "ck")
    _, records, _ = _read("ckplus", built.root)
    assert {r.subject for r in records.values()} == {"S005", "S010"}


def test_detection_failure_names_layouts_tried_and_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("x")
    with pytest.raises(SourceError) as info:
        open_source("affectnet", tmp_path / "random")
    message = str(info.value)
    for name in ("original", "npy", "yolo", "class-folders", "notes.txt"):
        assert name in message
    assert "\n" not in message
    with pytest.raises(SourceError, match="does not exist"):
        open_source("fer2013", tmp_path / "nope")


def _append_oversized_csv_row(csv_path: Path, width: int) -> None:
    """A row whose first field is over the csv module's 128 KiB field limit (a truncated or binary-pasted file)."""
    with open(csv_path, "a", newline="") as fh:
        fh.write('"' + "x" * (200 * 1024) + '"' + ",0" * (width - 1) + "\n")


def _oversize(path: Path) -> None:
    """Make ``path`` a sparse file of 65 MiB, over the 64 MiB curate reads whole (no disk used)."""
    with open(path, "wb") as fh:
        fh.truncate(65 << 20)


@pytest.mark.parametrize("fault", ["bad_yaml", "yaml_list", "csv_field_original", "csv_field_labels", "csv_field_fer",
                                   "huge_npy", "huge_raf_list", "huge_yolo_label"])
def test_an_unreadable_annotation_file_is_a_rejection_naming_it_not_a_crash(tmp_path: Path, fault: str) -> None:
    """Issue 31: parse errors and oversized annotation files become rejections with their reason; what was read
    before the fault is kept, and nothing is read whole past the size cap."""
    kind, builder = {"bad_yaml": ("affectnet", builders.affectnet_yolo), "yaml_list": ("affectnet", builders.affectnet_yolo),
                     "csv_field_original": ("affectnet", builders.affectnet_original),
                     "csv_field_labels": ("affectnet", builders.affectnet_class_folders), "csv_field_fer": ("fer2013", builders.fer2013_csv),
                     "huge_npy": ("affectnet", builders.affectnet_npy), "huge_raf_list": ("rafdb", builders.rafdb),
                     "huge_yolo_label": ("affectnet", builders.affectnet_yolo)}[fault]
    built = builder(tmp_path / "ds")
    root = built.root
    if fault == "bad_yaml":
        (root / "data.yaml").write_text("names: [anger, happy\ntrain: {{\n")
        broken = ("data.yaml", "malformed_annotation_file")
    elif fault == "yaml_list":
        (root / "data.yaml").write_text("- just\n- a list\n")
        broken = ("data.yaml", "malformed_annotation_file")
    elif fault == "csv_field_original":
        _append_oversized_csv_row(root / "training.csv", 9)
        broken = ("training.csv", "malformed_annotation_file")
    elif fault == "csv_field_labels":
        _append_oversized_csv_row(root / "labels.csv", 3)
        broken = ("labels.csv", "malformed_annotation_file")
    elif fault == "csv_field_fer":
        _append_oversized_csv_row(root / "fer2013.csv", 3)
        broken = ("fer2013.csv", "malformed_annotation_file")
    elif fault == "huge_npy":
        exp = sorted(root.glob("*/annotations/*_exp.npy"))[0]
        _oversize(exp)
        image = next(p for p in (exp.parent.parent / "images").iterdir() if p.stem == exp.name.removesuffix("_exp.npy"))
        broken = (image.relative_to(root).as_posix(), "malformed_annotation")
    elif fault == "huge_raf_list":
        listing = root / "EmoLabel" / "list_patition_label.txt"
        _oversize(listing)
        broken = ("EmoLabel/list_patition_label.txt", "malformed_annotation_file")
    else:
        label = sorted(root.glob("*/labels/f*.txt"))[0]
        _oversize(label)
        image = next(p for p in (label.parent.parent / "images").iterdir() if p.stem == label.stem)
        broken = (image.relative_to(root).as_posix(), "malformed_annotation")
    source = root / "fer2013.csv" if kind == "fer2013" else root
    _, records, rejections = _read(kind, source, media=tmp_path / "media")
    assert broken[0] in rejections and rejections[broken[0]].reason == broken[1], {p: r.reason for p, r in rejections.items()}
    assert rejections[broken[0]].detail, "the rejection must say why"
    if fault.startswith("csv_field") or fault.startswith("huge_npy") or fault == "huge_yolo_label":
        # Only the faulty part is lost: the rows before a broken csv row, and every other image, are still read.
        assert len(records) >= len(built.expected) - 1 and records
