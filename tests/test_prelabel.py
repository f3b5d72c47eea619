"""Teacher training, calibration, out-of-fold probabilities and pre-labeling on real FiftyOne + SQL."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from curate.models.calibrate import expected_calibration_error, fit_temperature, softmax
from curate.models.oof import stratified_folds
from tests import builders
from tests.conftest import ingest_unfiltered


def test_temperature_scaling_fixes_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    n, c = 4000, 7
    labels = rng.integers(0, c, n)
    # Right 60 % of the time but always ~99 % sure: badly over-confident.
    pred = np.where(rng.random(n) < 0.6, labels, (labels + rng.integers(1, c, n)) % c)
    logits = rng.normal(0, 0.5, (n, c))
    logits[np.arange(n), pred] += 8.0
    t = fit_temperature(logits[: n // 2], labels[: n // 2])
    before = expected_calibration_error(softmax(logits[n // 2 :]), labels[n // 2 :])
    after = expected_calibration_error(softmax(logits[n // 2 :], t), labels[n // 2 :])
    assert t > 2.0 and before > 0.3 and after < 0.05, (t, before, after)


def test_stratified_folds_spread_every_class() -> None:
    labels = ["a"] * 10 + ["b"] * 5 + ["c"] * 2
    folds = stratified_folds(labels, 3, seed=1)
    for cls in "ab":
        counts = np.bincount(folds[[i for i, l in enumerate(labels) if l == cls]], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert set(folds) == {0, 1, 2}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """84 synthetic faces (42 train, 42 test) ingested with every face kept."""
    tmp = tmp_path_factory.mktemp("prelabel")
    built = builders.fer2013_folders(tmp / "fer", per_class=6)
    return ingest_unfiltered(tmp, "fer2013", built.root, f"pre{os.getpid()}")


def _teacher(name: str, home: Path, url: str, **kw):  # noqa: ANN003, ANN202
    from curate.models.train import TrainConfig
    from curate.prelabel.teacher import TeacherOptions, train_teacher

    cfg = TrainConfig(arch="resnet18", image_size=32, epochs=1, batch_size=16, device="cpu", max_steps_per_epoch=2, **kw)
    opts = TeacherOptions(dataset=name, config=cfg, folds=2, oof="full")
    return train_teacher(opts, url, home)


def test_oof_probabilities_never_come_from_a_model_that_saw_the_sample(tiny_dataset) -> None:  # noqa: ANN001
    from curate.models.manifest import from_dataset
    from curate.models.oof import oof_full
    from curate.models.train import TrainConfig
    from curate.taxonomy import EMOTIONS

    name, home, url = tiny_dataset
    rows = [r for r in from_dataset(name, url) if r.label]
    audit = []
    cfg = TrainConfig(arch="resnet18", image_size=32, epochs=1, batch_size=16, device="cpu", max_steps_per_epoch=1)
    probs, folds = oof_full(rows, list(EMOTIONS), cfg, k=3, on_fold=lambda k, train, held: audit.append((k, set(train), set(held))))
    assert probs.shape == (len(rows), 8) and np.allclose(probs.sum(1), 1, atol=1e-4)
    covered = set()
    for k, train, held in audit:
        assert not train & held and all(folds[i] == k for i in held)
        covered |= held
    assert covered == set(range(len(rows)))


def test_teacher_checkpoint_metrics_sql_and_oof_fields(tiny_dataset) -> None:  # noqa: ANN001
    name, home, url = tiny_dataset
    s = _teacher(name, home, url)
    ckpt = Path(s["checkpoint"])
    assert ckpt.is_file() and ckpt.with_suffix(".json").is_file() and ckpt.with_suffix(".oof.npz").is_file()
    assert s["oof"]["method"] == "full" and s["oof"]["samples"] == 84
    assert s["counts"]["test"] == 42 and 0 <= s["test_metrics"]["accuracy"] <= 1
    oof = np.load(ckpt.with_suffix(".oof.npz"))
    assert len(set(oof["uids"].tolist())) == 84 and np.allclose(oof["probs"].sum(1), 1, atol=1e-4)
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    assert all(p is not None and len(p) == 8 for p in ds.values("prelabel_oof"))
    with sqlite3.connect(home / "curate.db") as db:
        runs = db.execute("SELECT kind, weights_hash FROM model_runs WHERE kind = 'teacher-train'").fetchall()
        assert (("teacher-train", s["sha256"]) in runs)
        assert db.execute("SELECT count(*) FROM checkpoints WHERE sha256 = ?", (s["sha256"],)).fetchone() == (1,)


def test_prelabel_writes_fields_and_rows_idempotently(tiny_dataset) -> None:  # noqa: ANN001
    from curate.prelabel.stage import prelabel
    from curate.store.fo_store import load_dataset

    name, home, url = tiny_dataset
    teacher = _teacher(name, home, url, seed=1)
    first = prelabel(name, url, Path(teacher["checkpoint"]), batch_size=32, device="cpu", workers=0)
    second = prelabel(name, url, None, batch_size=32, device="cpu", workers=0)  # newest registered teacher = same one
    assert first["samples"] == second["samples"] == 84 and second["reused_run"] and second["model_run_id"] == first["model_run_id"]
    ds = load_dataset(name, create=False)
    confidences = ds.values("prelabel.confidence")
    assert all(0 < c <= 1 for c in confidences)
    assert all(len(lg) == 8 for lg in ds.values("prelabel.logits"))
    assert len({len(e) for e in ds.values("embedding")}) == 1
    with sqlite3.connect(home / "curate.db") as db:
        assert db.execute("SELECT count(*) FROM label_events WHERE source = 'model' AND model_run_id = ?", (first["model_run_id"],)).fetchone() == (84,)
        assert db.execute("SELECT count(*) FROM model_runs WHERE kind = 'prelabel'").fetchone() == (1,)
        # Model labels never displace a dataset label in the current-label view.
        assert db.execute("SELECT count(*) FROM current_labels WHERE source = 'model'").fetchone() == (0,)
