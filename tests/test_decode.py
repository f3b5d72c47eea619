"""The bad-input corpus, one file at a time: each fault has its own named reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate.quality.decode import DecodeError, decode_face
from tests import builders


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> builders.Built:
    return builders.bad_inputs(tmp_path_factory.mktemp("bad"))


def test_every_fault_gets_its_reason(corpus: builders.Built) -> None:
    for rel, reason in corpus.rejected.items():
        if reason == "non_utf8_filename":
            continue  # decided by the stage (the escaped name is not a path), covered in test_ingest
        with pytest.raises(DecodeError) as info:
            decode_face(corpus.root / rel)
        assert info.value.reason == reason, rel


def test_odd_but_valid_images_decode(corpus: builders.Built) -> None:
    for rel in corpus.expected:
        d = decode_face(corpus.root / rel)
        assert d.face.shape == (48, 48) and d.face.dtype == np.uint8
        assert d.face.std() > 5, f"{rel} decoded to a flat image"


def test_notes_describe_conversions(corpus: builders.Built) -> None:
    notes = {rel: decode_face(corpus.root / rel).notes for rel in corpus.expected}
    assert any(n.startswith("extension_mismatch") for n in notes["happy/png_named.jpg"])
    assert "cmyk_converted" in notes["happy/cmyk.jpg"]
    assert any(n.startswith("high_bit_depth") for n in notes["happy/sixteen_bit.png"])
    assert any(n.startswith("alpha_flattened") for n in notes["happy/rgba.png"])
    assert "exif_rotated:6" in notes["happy/exif_rotated.jpg"]
    rotated = decode_face(corpus.root / "happy/exif_rotated.jpg")
    assert (rotated.width, rotated.height) == (64, 48)  # stored 48x64, shown rotated


def test_face_box_crop_and_bad_box(tmp_path: Path) -> None:
    canvas = np.zeros((100, 100), np.uint8)
    canvas[20:60, 30:70] = builders.face(1, 40)
    path = builders.write_image(tmp_path / "f.png", canvas)
    d = decode_face(path, box=(30, 20, 40, 40))
    assert d.box_px == (30, 20, 40, 40) and d.face.mean() > 60
    yolo = decode_face(path, box=(0.5, 0.4, 0.4, 0.4), box_units="yolo")
    assert yolo.box_px == pytest.approx((30, 20, 40, 40))
    with pytest.raises(DecodeError) as info:
        decode_face(path, box=(500, 500, 40, 40))
    assert info.value.reason == "bad_face_box"


def test_content_hash_and_phash_are_stable(tmp_path: Path) -> None:
    img = builders.face(7, 96)
    a = decode_face(builders.write_image(tmp_path / "a.png", img))
    b = decode_face(builders.write_image(tmp_path / "b.jpg", img))
    assert a.content_hash != b.content_hash  # different bytes
    assert bin(a.phash ^ b.phash).count("1") <= 4  # same picture
    other = decode_face(builders.write_image(tmp_path / "c.png", builders.face(8, 96)))
    assert bin(a.phash ^ other.phash).count("1") > 4
