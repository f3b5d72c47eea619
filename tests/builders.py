"""Tiny datasets in every supported layout, built from synthetic faces (tests never need real data).

Each builder returns what a correct ingest must find: ``expected`` maps the path relative
to the root to (canonical label or None, split), ``rejected`` maps a path to its reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


@dataclass
class Built:
    root: Path
    expected: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)


def face(seed: int, size: int = 48) -> np.ndarray:
    """A synthetic grayscale face: skin ellipse, brows, eyes, nose, mouth and some texture."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), int(rng.integers(30, 90)), np.uint8)
    s = size / 48
    c = (int(24 * s + rng.integers(-2, 3)), int(25 * s + rng.integers(-2, 3)))
    cv2.ellipse(img, c, (int(16 * s), int(21 * s)), 0, 0, 360, int(rng.integers(150, 210)), -1)
    for dx in (-7, 7):
        eye = (int(c[0] + dx * s), int(c[1] - 6 * s))
        cv2.ellipse(img, eye, (int(3 * s), int(2 * s)), 0, 0, 360, 40, -1)
        cv2.line(img, (eye[0] - int(4 * s), eye[1] - int(4 * s + rng.integers(0, 3))), (eye[0] + int(4 * s), eye[1] - int(4 * s)), 60, max(1, int(s)))
    cv2.line(img, (c[0], c[1] - int(2 * s)), (c[0] - int(2 * s), c[1] + int(5 * s)), 120, max(1, int(s)))
    smile = int(rng.integers(-4, 5) * s)
    cv2.ellipse(img, (c[0], c[1] + int(11 * s)), (int(7 * s), max(1, abs(smile))), 0, 0 if smile >= 0 else 180, 180 if smile >= 0 else 360, 70, max(1, int(2 * s)))
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


#: Per expression: (mouth curve in px: + smile, - frown; mouth opening in px; brow tilt in px: + inner end raised; eye height).
_EXPRESSION = {"neutral": (0, 0, 0, 2), "happy": (5, 0, 0, 2), "sad": (-4, 0, 3, 2), "surprise": (0, 5, 3, 4),
               "fear": (-2, 3, 4, 3), "disgust": (-3, 0, -2, 1), "anger": (-4, 0, -4, 2), "contempt": (2, 0, -1, 2)}


def expression_face(seed: int, emotion: str, size: int = 48) -> np.ndarray:
    """A synthetic face whose expression a small CNN can learn (mouth, brows and eyes follow ``emotion``), with
    the same random placement, brightness and noise as :func:`face`: for tests that train a model and need it
    to learn something (routing that finds flipped labels), where :func:`face` carries no class signal."""
    curve, opening, tilt, eye_h = _EXPRESSION[emotion]
    rng = np.random.default_rng(seed)
    img = np.full((size, size), int(rng.integers(30, 90)), np.uint8)
    c = (24 + int(rng.integers(-2, 3)), 25 + int(rng.integers(-2, 3)))
    cv2.ellipse(img, c, (16, 21), 0, 0, 360, int(rng.integers(150, 210)), -1)
    for side in (-1, 1):
        eye = (c[0] + 7 * side, c[1] - 6)
        cv2.ellipse(img, eye, (3, eye_h), 0, 0, 360, 40, -1)
        inner, outer = (eye[0] - 4 * side, eye[1] - 5 - tilt), (eye[0] + 4 * side, eye[1] - 5)
        cv2.line(img, inner, outer, 60, 1)
    mouth = (c[0], c[1] + 11)
    if opening:
        cv2.ellipse(img, mouth, (5, opening), 0, 0, 360, 50, -1)
    else:
        cv2.ellipse(img, mouth, (7, max(1, abs(curve))), 0, 0 if curve >= 0 else 180, 180 if curve >= 0 else 360, 70, 2)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def write_image(path: Path, img: np.ndarray, ext: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(ext or path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def landmarks_text(seed: int, size: int = 48) -> str:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.2 * size, 0.8 * size, 136)
    return ";".join(f"{v:.2f}" for v in pts)


# ---------------------------------------------------------------- AffectNet
def affectnet_original(root: Path) -> Built:
    b = Built(root)
    images = root / "Manually_Annotated_Images"
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks", "expression", "valence", "arousal"]
    rows = {"training.csv": [], "validation.csv": []}
    seed = 0
    for csv_name, split in (("training.csv", "train"), ("validation.csv", "val")):
        for code in range(11):
            seed += 1
            sub = f"{code + 100}/img_{split}_{code}.jpg"
            big = cv2.resize(face(seed), (96, 96))
            canvas = np.full((128, 128), 20, np.uint8)
            canvas[16:112, 16:112] = big
            write_image(images / sub, canvas)
            rows[csv_name].append([sub, 16, 16, 96, 96, landmarks_text(seed, 128), code, 0.25 if code < 8 else -2, -0.5 if code < 8 else -2])
            from curate.taxonomy import from_code

            b.expected[f"Manually_Annotated_Images/{sub}"] = (from_code("affectnet", code), split)
    # Faults: out-of-range code, malformed row, annotated file missing, image without annotation.
    write_image(images / "200/bad_code.jpg", face(90))
    rows["training.csv"].append(["200/bad_code.jpg", 0, 0, 48, 48, "", 12, 0, 0])
    b.rejected["Manually_Annotated_Images/200/bad_code.jpg"] = "label_out_of_range"
    write_image(images / "200/bad_row.jpg", face(91))
    rows["training.csv"].append(["200/bad_row.jpg", "x", 0, 48, 48, "", 1, 0, 0])
    b.rejected["Manually_Annotated_Images/200/bad_row.jpg"] = "malformed_annotation"
    rows["validation.csv"].append(["200/gone.jpg", 0, 0, 48, 48, "", 1, 0, 0])
    b.rejected["Manually_Annotated_Images/200/gone.jpg"] = "missing_file"
    write_image(images / "200/orphan.jpg", face(92))
    b.rejected["Manually_Annotated_Images/200/orphan.jpg"] = "no_annotation"
    # Hostile paths: real faces outside the dataset root, named by '..' and by an absolute path.
    write_image(root.parent / "outside-secret.jpg", face(93))
    rows["training.csv"].append(["../../outside-secret.jpg", 0, 0, 48, 48, "", 1, 0, 0])
    b.rejected["../../outside-secret.jpg"] = "outside_root"
    absolute = write_image(root.parent / "absolute-secret.jpg", face(94))
    rows["validation.csv"].append([str(absolute), 0, 0, 48, 48, "", 1, 0, 0])
    b.rejected[str(absolute)] = "outside_root"
    for name, body in rows.items():
        with open(root / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(body)
    return b


def affectnet_npy(root: Path) -> Built:
    b = Built(root)
    seed = 100
    for folder, split in (("train_set", "train"), ("val_set", "val")):
        for code in range(8):
            seed += 1
            stem = f"{seed}"
            write_image(root / folder / "images" / f"{stem}.jpg", cv2.resize(face(seed), (112, 112)))
            ann = root / folder / "annotations"
            ann.mkdir(parents=True, exist_ok=True)
            # Codes stored as strings, as some releases do.
            np.save(ann / f"{stem}_exp.npy", np.array(str(code)))
            np.save(ann / f"{stem}_val.npy", np.array("0.5"))
            np.save(ann / f"{stem}_aro.npy", np.array("-0.25"))
            np.save(ann / f"{stem}_lnd.npy", np.random.default_rng(seed).uniform(10, 100, 136).astype(str))
            from curate.taxonomy import EMOTIONS

            b.expected[f"{folder}/images/{stem}.jpg"] = (EMOTIONS[code], split)
    write_image(root / "train_set" / "images" / "noann.jpg", face(150))
    b.rejected["train_set/images/noann.jpg"] = "missing_annotation"
    write_image(root / "train_set" / "images" / "code11.jpg", face(151))
    np.save(root / "train_set" / "annotations" / "code11_exp.npy", np.array(11))
    b.rejected["train_set/images/code11.jpg"] = "label_out_of_range"
    return b


def affectnet_class_folders(root: Path) -> Built:
    b = Built(root)
    classes = ["anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    canon = {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear", "happy": "happy",
             "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
    seed = 200
    csv_rows = []
    for split_dir, split in (("Train", "train"), ("Test", "test")):
        for cls in classes:
            seed += 1
            write_image(root / split_dir / cls / f"image{seed:07d}.jpg", cv2.resize(face(seed), (96, 96)))
            b.expected[f"{split_dir}/{cls}/image{seed:07d}.jpg"] = (canon[cls], split)
            csv_rows.append([f"{split_dir}/{cls}/image{seed:07d}.jpg", cls, "0.9"])
    # labels.csv disagrees with the folder for one image: the csv wins.
    csv_rows[0][1] = "surprise"
    b.expected[csv_rows[0][0]] = ("surprise", "train")
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pth", "label", "relFCs"])
        w.writerows(csv_rows)
    return b


def affectnet_yolo(root: Path) -> Built:
    b = Built(root)
    names = ["Anger", "Contempt", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
    canon = ["anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 8\nnames: "
                                    + str(names) + "\n")
    seed = 300
    for split in ("train", "valid", "test"):
        key = "val" if split == "valid" else split
        for cls in range(8):
            seed += 1
            canvas = np.full((96, 96), 30, np.uint8)
            canvas[8:88, 16:80] = cv2.resize(face(seed), (64, 80))
            write_image(root / split / "images" / f"f{seed}.png", canvas)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            (root / split / "labels" / f"f{seed}.txt").write_text(f"{cls} 0.5 0.5 {64 / 96:.4f} {80 / 96:.4f}\n")
            b.expected[f"{split}/images/f{seed}.png"] = (canon[cls], key)
    write_image(root / "train" / "images" / "nolabel.png", face(399))
    b.rejected["train/images/nolabel.png"] = "missing_annotation"
    write_image(root / "train" / "images" / "cls9.png", face(398))
    (root / "train" / "labels" / "cls9.txt").write_text("9 0.5 0.5 0.5 0.5\n")
    b.rejected["train/images/cls9.png"] = "label_out_of_range"
    return b


# ---------------------------------------------------------------- FER2013, CK+, RAF-DB, folders
def fer2013_csv(root: Path) -> Built:
    b = Built(root)
    from curate.taxonomy import FER2013

    rows = []
    for i, (code, usage) in enumerate([(c, u) for u in ("Training", "PublicTest", "PrivateTest") for c in range(7)]):
        pixels = " ".join(str(v) for v in face(400 + i).reshape(-1))
        rows.append([code, pixels, usage])
        digest = hashlib.sha256(face(400 + i).tobytes()).hexdigest()[:12]
        b.expected[f"{usage}/{i:05d}-{digest}.png"] = (FER2013[code], "train" if usage == "Training" else "test")
    rows.append([9, " ".join(["0"] * 2304), "Training"])  # out-of-range code (csv line 23)
    b.rejected["fer2013.csv:23"] = "label_out_of_range"
    rows.append([1, "1 2 3", "Training"])  # not a square image (csv line 24)
    b.rejected["fer2013.csv:24"] = "malformed_annotation"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    return b


def fer2013_folders(root: Path, per_class: int = 2) -> Built:
    b = Built(root)
    folders = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
    seed = 500
    for split in ("train", "test"):
        for folder, label in folders.items():
            for k in range(per_class):
                seed += 1
                name = f"Training_{seed}.jpg" if split == "train" else f"{'PublicTest' if k % 2 else 'PrivateTest'}_{seed}.jpg"
                write_image(root / split / folder / name, face(seed))
                b.expected[f"{split}/{folder}/{name}"] = (label, split)
    return b


def ckplus(root: Path) -> Built:
    b = Built(root)
    folders = {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear", "happy": "happy", "sadness": "sad", "surprise": "surprise"}
    seed = 600
    for i, (folder, label) in enumerate(folders.items()):
        for subject in ("S005", "S010"):
            seed += 1
            name = f"{subject}_{i + 1:03d}_00000017.png"
            write_image(root / "CK+48" / folder / name, face(seed))
            b.expected[f"CK+48/{folder}/{name}"] = (label, "train")
    return b


def rafdb(root: Path) -> Built:
    b = Built(root)
    from curate.taxonomy import RAFDB

    lines = []
    seed = 700
    for split in ("train", "test"):
        for code in range(1, 8):
            seed += 1
            name = f"{split}_{seed:05d}.jpg"
            write_image(root / "Image" / "aligned" / f"{split}_{seed:05d}_aligned.jpg", cv2.resize(face(seed), (100, 100)))
            lines.append(f"{name} {code}")
            b.expected[f"Image/aligned/{split}_{seed:05d}_aligned.jpg"] = (RAFDB[code], split)
    lines.append("train_09999.jpg 8")
    b.rejected["Image/aligned/train_09999_aligned.jpg"] = "label_out_of_range"
    lines.append("broken line without code")
    b.rejected["EmoLabel/list_patition_label.txt:16"] = "malformed_annotation"
    write_image(root.parent / "rafdb-secret.jpg", face(799))
    lines.append("../../../rafdb-secret.jpg 3")  # escapes Image/original: never read
    b.rejected["../../../rafdb-secret.jpg"] = "outside_root"
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return b


def folder_unlabeled(root: Path) -> Built:
    b = Built(root)
    for i in range(4):
        write_image(root / "batch1" / f"u{i}.jpg", face(800 + i))
        b.expected[f"batch1/u{i}.jpg"] = (None, None)
    write_image(root / "happy" / "h.jpg", face(810))
    b.expected["happy/h.jpg"] = ("happy", None)
    return b


# ---------------------------------------------------------------- the bad-input corpus
def _png_16bit(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((img.astype(np.uint16) * 257)).save(buf, format="PNG")
    return buf.getvalue()


def bad_inputs(root: Path) -> Built:
    """One file per fault, in class folders: what must be ingested and what rejected (with which reason)."""
    b = Built(root)
    ok = root / "happy"
    ok.mkdir(parents=True)
    base = cv2.resize(face(900), (64, 64))
    jpg = cv2.imencode(".jpg", base)[1].tobytes()

    def good(name: str, data: bytes) -> None:
        (ok / name).write_bytes(data)
        b.expected[f"happy/{name}"] = ("happy", None)

    def bad(name: str, data: bytes | None, reason: str) -> None:
        if data is not None:
            (ok / name).write_bytes(data)
        b.rejected[f"happy/{name}"] = reason

    good("plain.jpg", jpg)
    bad("zero.jpg", b"", "empty_file")
    bad("truncated.jpg", jpg[: len(jpg) // 2], "truncated")
    bad("text.jpg", b"this is not an image at all\n" * 20, "not_an_image")
    good("png_named.jpg", cv2.imencode(".png", base)[1].tobytes())  # wrong extension, valid content
    rgb = cv2.cvtColor(base, cv2.COLOR_GRAY2RGB)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, format="JPEG")
    good("cmyk.jpg", buf.getvalue())
    good("sixteen_bit.png", _png_16bit(base))
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("RGBA").save(buf, format="PNG")
    good("rgba.png", buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buf, format="PNG")
    good("palette.png", buf.getvalue())
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    Image.fromarray(rgb[:, :48]).save(buf, format="JPEG", exif=exif.tobytes())
    good("exif_rotated.jpg", buf.getvalue())
    buf = io.BytesIO()
    Image.new("L", (1, 1), 128).save(buf, format="PNG")
    bad("one_pixel.png", buf.getvalue(), "too_small")
    bad("bomb.png", _bomb_png(20000, 20000), "decompression_bomb")
    # A stray 70 MB "image" (sparse: no disk used): rejected by its size before a byte is read.
    with open(ok / "huge.jpg", "wb") as fh:
        fh.write(jpg[:64])
        fh.truncate(70 * 1024 * 1024)
    b.rejected["happy/huge.jpg"] = "too_large"
    unreadable = ok / "unreadable.jpg"
    unreadable.write_bytes(jpg)
    os.chmod(unreadable, 0)
    b.rejected["happy/unreadable.jpg"] = "unreadable" if os.geteuid() != 0 else "__root_can_read__"
    if os.geteuid() == 0:  # root reads mode-000 files: the fault is not reproducible, the file is fine
        del b.rejected["happy/unreadable.jpg"]
        b.expected["happy/unreadable.jpg"] = ("happy", None)
    os.symlink(ok / "does-not-exist.jpg", ok / "dangling.jpg")
    b.rejected["happy/dangling.jpg"] = "broken_symlink"
    weird = "caf\udce9 face with spaces.jpg"  # a non-UTF-8 byte (0xE9) in the name
    with open(os.path.join(os.fsencode(ok), os.fsencode(weird)), "wb") as fh:
        fh.write(jpg)
    # MongoDB and SQL store text as UTF-8: such a name cannot be referenced, so it is rejected by name.
    b.rejected["happy/caf\\xe9 face with spaces.jpg"] = "non_utf8_filename"
    good("space name.jpg", jpg)
    (ok / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 100)
    b.rejected["happy/.DS_Store"] = "not_an_image"
    return b


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height 8-bit gray pixels (a classic decompression bomb)."""
    raw = zlib.compress(b"\x00" * (width + 1) * 64, 9)  # only a few rows of data: the header is what matters

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
