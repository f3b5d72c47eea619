"""Teacher training, calibration, out-of-fold probabilities and pre-labeling on real FiftyOne + SQL."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from curate.models.calibrate import expected_calibration_error, fit_temperature, softmax
from curate.models.oof import stratified_folds
from tests import builders
from tests.helpers import ingest_unfiltered, sql_rows


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
    from curate.models.teacher import TeacherOptions
    from curate.models.train import TrainConfig
    from curate.prelabel.teacher import train_teacher

    cfg = TrainConfig(**{"arch": "resnet18", "image_size": 32, "epochs": 1, "batch_size": 16, "device": "cpu", "max_steps_per_epoch": 2, **kw})
    opts = TeacherOptions(dataset=name, config=cfg, folds=2, oof="cross")
    return train_teacher(opts, url, home)


def test_oof_probabilities_come_from_the_fold_model_that_never_saw_the_sample(tiny_dataset, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Each train row's OOF row equals what its own held-out fold model predicts, and that model trained on
    exactly the other folds' samples (ids compared, not counted: equal folds would hide a leak from a count);
    val/test rows (no member trained on them) get the teacher's mean."""
    import json

    import curate.models.fit as fit_module

    trained_on: dict[int, set[str]] = {}
    real_fit = fit_module.fit

    def recording_fit(rows, val, classes, cfg, out_dir, extra, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        trained_on[extra["member"]] = {r.uid for r in rows}  # what the loop is really handed, then the real loop runs
        return real_fit(rows, val, classes, cfg, out_dir, extra, *args, **kwargs)

    monkeypatch.setattr(fit_module, "fit", recording_fit)

    from curate.models.calibrate import softmax
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.manifest import from_dataset, split_rows
    from curate.models.preprocess import Preprocess

    name, home, url = tiny_dataset
    s = _teacher(name, home, url, epochs=2, max_steps_per_epoch=3, seed=2)
    run_dir, ckpt = Path(s["run_dir"]), Path(s["checkpoint"])
    plan = json.loads((run_dir / "plan.json").read_text())
    train, val, test = split_rows([r for r in from_dataset(name, url) if r.label], 2)
    assert sorted(plan["folds"]) == sorted(r.uid for r in train) and set(plan["folds"].values()) == {0, 1}
    oof = np.load(ckpt.with_suffix(".oof.npz"))
    by_uid = {u: (p, f) for u, p, f in zip(oof["uids"].tolist(), oof["probs"], oof["folds"])}
    assert set(by_uid) == {r.uid for r in [*train, *val, *test]}
    for f in (0, 1):
        member, side = load_checkpoint(run_dir / f"fold-{f}" / "best.safetensors")
        held = [r for r in train if plan["folds"][r.uid] == f]
        held_ids = {r.uid for r in held}
        assert held_ids and trained_on[f].isdisjoint(held_ids), f"fold model {f} trained on its own held-out samples"
        assert trained_on[f] == {r.uid for r in train} - held_ids
        expected = softmax(predict(member, held, side["classes"], Preprocess.from_dict(side["preprocess"]), 16, "cpu")[0])
        got = np.array([by_uid[r.uid][0] for r in held])
        assert np.allclose(got, expected, atol=1e-5) and all(by_uid[r.uid][1] == f for r in held)
    teacher, side = load_checkpoint(ckpt)
    mean = softmax(predict(teacher, test, side["classes"], Preprocess.from_dict(side["preprocess"]), 16, "cpu")[0])
    assert np.allclose(np.array([by_uid[r.uid][0] for r in test]), mean, atol=1e-5)
    assert all(by_uid[r.uid][1] == -1 for r in test)
    assert s["oof"]["cost_vs_one_training"] == 1 and s["members"] == 2


def test_teacher_checkpoint_metrics_sql_and_oof_fields(tiny_dataset) -> None:  # noqa: ANN001
    name, home, url = tiny_dataset
    s = _teacher(name, home, url)
    ckpt = Path(s["checkpoint"])
    assert ckpt.is_file() and ckpt.with_suffix(".json").is_file() and ckpt.with_suffix(".oof.npz").is_file()
    assert s["oof"]["method"] == "cross" and s["oof"]["samples"] == 84
    assert s["counts"]["test"] == 42 and s["test_metrics"]["n"] == 42
    oof = np.load(ckpt.with_suffix(".oof.npz"))
    assert len(set(oof["uids"].tolist())) == 84 and np.allclose(oof["probs"].sum(1), 1, atol=1e-4)
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    assert all(p is not None and len(p) == 8 for p in ds.values("prelabel_oof"))
    runs = sql_rows(url, "SELECT kind, weights_hash FROM model_runs WHERE kind = 'teacher-train'")
    assert ("teacher-train", s["sha256"]) in runs
    assert sql_rows(url, "SELECT count(*) FROM checkpoints WHERE sha256 = :sha", sha=s["sha256"]) == [(1,)]


@pytest.mark.slow  # ~70 s: three teacher runs; CI runs it (.ci/run)
def test_teacher_resumes_after_kill_dash_nine_and_matches_an_uninterrupted_run(tiny_dataset, tmp_path: Path) -> None:  # noqa: ANN001
    """`curate teacher train` killed mid-run, then `--resume RUN_DIR`: the finished teacher is tensor-for-tensor
    the one an uninterrupted run trains."""
    import signal
    import subprocess

    from safetensors.torch import load_file

    from tests.helpers import last_json, run_cli

    name, home, url = tiny_dataset
    args = ["teacher", "train", "--dataset", name, "--arch", "resnet18", "--image-size", "32", "--epochs", "3", "--batch-size", "8",
            "--max-steps-per-epoch", "4", "--device", "cpu", "--folds", "2", "--json"]
    env = {**os.environ, "CURATE_HOME": str(home), "CURATE_SEED": "3"}
    out_killed, out_whole = tmp_path / "killed", tmp_path / "whole"
    exe = Path(os.sys.executable).parent / "curate"
    proc = subprocess.Popen([str(exe), *args, "--out", str(out_killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    from tests.helpers import wait_for

    assert wait_for(lambda: any(out_killed.glob("teacher-*/fold-0/epoch-001.json")), timeout=300, interval=0.02), "first epoch never finished"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next(out_killed.glob("teacher-*"))
    assert not (run_dir / "teacher.safetensors").exists(), "the kill landed after the run finished"
    done_before = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.glob("fold-*/epoch-*.json"))
    resumed = last_json(run_cli(*args, "--resume", str(run_dir), env={"CURATE_HOME": str(home), "CURATE_SEED": "3"}))
    assert resumed["resumed"] is True and Path(resumed["checkpoint"]).parent == run_dir
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.glob("fold-*/epoch-*.json")) == \
        [f"fold-{f}/epoch-{e:03d}.json" for f in (0, 1) for e in (1, 2, 3)]
    assert done_before and len(done_before) < 6
    whole = last_json(run_cli(*args, "--out", str(out_whole), env={"CURATE_HOME": str(home), "CURATE_SEED": "3"}))
    a, b = load_file(resumed["checkpoint"]), load_file(whole["checkpoint"])
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), "resumed teacher differs from an uninterrupted run"


def test_prelabel_writes_fields_and_rows_idempotently(tiny_dataset, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from curate.models import infer
    from curate.prelabel.stage import prelabel
    from curate.store.fo_store import load_dataset

    name, home, url = tiny_dataset
    teacher = _teacher(name, home, url, seed=1)
    real_predict, seen = infer.predict, []

    def counting_predict(model, rows, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(len(rows))
        return real_predict(model, rows, *args, **kwargs)

    monkeypatch.setattr(infer, "predict", counting_predict)
    first = prelabel(name, url, Path(teacher["checkpoint"]), batch_size=32, device="cpu", workers=0, chunk_size=20)  # 84 = 4 x 20 + 4
    assert seen == [20, 20, 20, 20, 4], "memory stays flat: never more than one chunk of faces (and embeddings) at once"
    monkeypatch.undo()
    second = prelabel(name, url, None, batch_size=32, device="cpu", workers=0)  # newest registered teacher = same one
    assert first["samples"] == second["samples"] == 84 and second["reused_run"] and second["model_run_id"] == first["model_run_id"]
    ds = load_dataset(name, create=False)
    confidences = ds.values("prelabel.confidence")
    assert all(0 < c <= 1 for c in confidences)
    # Per sample: run the checkpoint here on a few known faces and compare with what was stored for those same faces.
    from curate.models.calibrate import softmax
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.manifest import from_dataset
    from curate.models.preprocess import Preprocess

    model, side = load_checkpoint(Path(teacher["checkpoint"]))
    known = sorted(from_dataset(name, url), key=lambda r: r.uid)[:: 17]
    probs = softmax(predict(model, known, side["classes"], Preprocess.from_dict(side["preprocess"]), 8, "cpu")[0], side["temperature"])
    stored = {u: (lab, conf) for u, lab, conf in zip(*ds.values(["sample_uid", "prelabel.label", "prelabel.confidence"]))}
    events = dict(sql_rows(url, "SELECT s.uid, e.label FROM label_events e JOIN samples s ON s.id = e.sample_id "
                                "WHERE e.source = 'model' AND e.model_run_id = :run", run=first["model_run_id"]))
    for r, p in zip(known, probs):
        label = side["classes"][int(p.argmax())]
        assert stored[r.uid][0] == label == events[r.uid], r.uid
        assert stored[r.uid][1] == pytest.approx(float(p.max()), abs=1e-4)
    assert all(len(lg) == 8 for lg in ds.values("prelabel.logits"))
    assert len({len(e) for e in ds.values("embedding")}) == 1
    assert sql_rows(url, "SELECT count(*) FROM label_events WHERE source = 'model' AND model_run_id = :run", run=first["model_run_id"]) == [(84,)]
    assert sql_rows(url, "SELECT count(*) FROM model_runs WHERE kind = 'prelabel'") == [(1,)]
    # Model labels never displace a dataset label in the current-label view.
    assert sql_rows(url, "SELECT count(*) FROM current_labels WHERE source = 'model'") == [(0,)]


def test_from_manifest_offers_every_knob_of_the_recipe_with_its_default() -> None:
    """`python -m curate.models.from_manifest --help` lists every TrainConfig, TeacherPlan and RetrainConfig field (the
    parser is built from them, so a new knob cannot be forgotten there), each with the recipe's own default."""
    import dataclasses
    import subprocess
    import sys

    from curate.models.config import RetrainConfig, TeacherPlan, TrainConfig

    out = subprocess.run([sys.executable, "-m", "curate.models.from_manifest", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for cls in (TrainConfig, TeacherPlan, RetrainConfig):
        for f in dataclasses.fields(cls):
            assert f"--{f.name.replace('_', '-')}" in text, f"{cls.__name__}.{f.name} missing from --help"
    assert "[default: resnet50 for the teacher, mobilenetv2_100 for the student]" in text
    assert f"[default: {TrainConfig.label_smoothing}]" in text and f"[default: {TeacherPlan.folds}]" in text


def test_a_tampered_teacher_is_refused_before_use_by_its_sidecar_and_by_the_ledger(tiny_dataset, tmp_path: Path) -> None:  # noqa: ANN001
    """Weights changed after they were written (sidecar sha256) and weights swapped together with their sidecar (the
    ledger's sha256) are both refused in one line before prelabel stores anything; the registered file works."""
    import shutil

    from curate.models.checkpoint import load_checkpoint, save_checkpoint
    from curate.models.factory import create_model
    from tests.helpers import run_cli

    name, home, url = tiny_dataset
    teacher = Path(_teacher(name, home, url, seed=3)["checkpoint"])
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    for f in (teacher, teacher.with_suffix(".json")):
        shutil.copy2(f, pristine / f.name)
    env = {"CURATE_HOME": str(home), "CURATE_DB_URL": url}
    events_before = sql_rows(url, "SELECT count(*) FROM label_events WHERE source = 'model'")

    def refused(expected: str, checkpoint: Path = teacher) -> None:
        proc = run_cli("prelabel", "--dataset", name, "--device", "cpu", "--checkpoint", str(checkpoint), "--json", env=env, check=False)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0] and str(checkpoint) in lines[0], proc.stderr
        assert sql_rows(url, "SELECT count(*) FROM label_events WHERE source = 'model'") == events_before

    # A copy the ledger never saw, one byte flipped deep inside the weights: its own sidecar refuses it.
    copy = tmp_path / "copy" / teacher.name
    copy.parent.mkdir()
    shutil.copy2(teacher.with_suffix(".json"), copy.with_suffix(".json"))
    data = bytearray(teacher.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    refused("do not match the sha256", copy)
    _, side = load_checkpoint(pristine / teacher.name)
    from curate.models.ensemble import Ensemble

    others = [create_model(side["arch"], len(side["classes"]), stem_stride=side["model_options"].get("stem_stride")) for _ in range(2)]
    save_checkpoint(teacher, Ensemble(others), {k: v for k, v in side.items() if k != "sha256"})  # with a consistent sidecar
    load_checkpoint(teacher)  # the sidecar alone is satisfied ...
    refused("the ledger registered")  # ... the ledger is not
    for f in (teacher, teacher.with_suffix(".json")):
        shutil.copy2(pristine / f.name, f)
    ok = run_cli("prelabel", "--dataset", name, "--device", "cpu", "--json", env=env)
    assert ok.returncode == 0


def test_out_of_fold_probabilities_changed_after_training_are_refused_on_import(tiny_dataset, tmp_path: Path) -> None:  # noqa: ANN001
    """Issue 31: the .oof.npz beside a teacher steers routing and cleanlab; its sha256 rides in the teacher's sidecar,
    so a swapped or damaged file is refused in one line and stores nothing."""
    import io
    import shutil

    from tests.helpers import last_json, run_cli

    name, home, url = tiny_dataset
    teacher = Path(_teacher(name, home, url, seed=5)["checkpoint"])
    oof_file = teacher.with_suffix(".oof.npz")
    env = {"CURATE_HOME": str(home), "CURATE_DB_URL": url}
    copy = tmp_path / "copy" / teacher.name
    copy.parent.mkdir()
    for f in (teacher, teacher.with_suffix(".json"), oof_file):
        shutil.copy2(f, copy.parent / f.name)
    with np.load(oof_file) as data:
        uids, probs, folds = data["uids"], data["probs"], data["folds"]
    steered = np.roll(probs, 1, axis=1)  # the same shapes, every face's probabilities moved to another class
    buf = io.BytesIO()
    np.savez_compressed(buf, uids=uids, probs=steered, folds=folds)
    for damaged, expected in ((buf.getvalue(), "changed after training"), (b"not a zip", "changed after training")):
        copy.with_suffix(".oof.npz").write_bytes(damaged)
        proc = run_cli("teacher", "import", str(copy), "--dataset", name, env=env, check=False)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0] and "oof.npz" in lines[0], proc.stderr
    shutil.copy2(oof_file, copy.with_suffix(".oof.npz"))
    assert last_json(run_cli("teacher", "import", str(copy), "--dataset", name, "--json", env=env))["oof_samples_stored"] == len(uids)


@pytest.mark.slow  # ~1 min: two processes train and import; CI runs it (.ci/run)
def test_manifest_round_trip_export_train_without_stores_import_prelabel(tmp_path: Path) -> None:
    """The GPU path: export a manifest, train the teacher where FiftyOne and SQL cannot even be imported,
    bring the checkpoint and its out-of-fold probabilities back, and pre-label with it."""
    import json
    import subprocess
    import sys

    from tests.helpers import last_json, run_cli

    built = builders.fer2013_folders(tmp_path / "images" / "fer", per_class=4)
    name, home, url = ingest_unfiltered(tmp_path, "fer2013", built.root, f"mf{os.getpid()}")
    env = {"CURATE_HOME": str(home)}
    manifest = tmp_path / "moved" / "fer.csv"
    exported = last_json(run_cli("manifest", "export", "--dataset", name, "--out", str(manifest), "--relative-to", str(tmp_path / "images"),
                                 "--json", env=env))
    assert exported["rows"] == exported["labeled"] == 56
    lines = manifest.read_text().splitlines()
    assert lines[0] == "path,label,split,sample_uid,box,group" and all(not l.startswith("/") for l in lines[1:])
    # "Another machine": the manifest moved away from the images; --root says where they are now.
    blocker = ("import sys; sys.modules['fiftyone'] = None; sys.modules['sqlalchemy'] = None; sys.modules['label_studio_sdk'] = None\n"
               "from curate.models.from_manifest import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", blocker, "teacher", str(manifest), "--root", str(tmp_path / "images"), "--out", str(tmp_path / "gpu"),
                           "--arch", "resnet18", "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--max-steps-per-epoch", "2",
                           "--device", "cpu", "--folds", "3", "--label-smoothing", "0.25", "--no-tta-flip"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    trained = json.loads(proc.stdout.strip().splitlines()[-1])
    ckpt = Path(trained["checkpoint"])
    assert trained["members"] == 3 and trained["oof"]["samples"] == 56 and ckpt.is_file()
    side = json.loads(ckpt.with_suffix(".json").read_text())  # knobs given on the command line reach the recipe
    assert side["train_config"]["label_smoothing"] == 0.25 and side["train_config"]["tta_flip"] is False
    imported = last_json(run_cli("teacher", "import", str(ckpt), "--dataset", name, "--json", env=env))
    assert imported["oof_samples_stored"] == 56 and imported["sha256"] == trained["sha256"] and imported["registered_before"] is False
    again = last_json(run_cli("teacher", "import", str(ckpt), "--dataset", name, "--json", env=env))  # the same file twice: no new rows
    assert again["registered_before"] is True and again["model_run_id"] == imported["model_run_id"]
    assert sql_rows(url, "SELECT count(*) FROM checkpoints WHERE sha256 = :sha", sha=trained["sha256"]) == [(1,)]
    pre = last_json(run_cli("prelabel", "--dataset", name, "--json", env=env))  # newest registered teacher = the imported one
    assert pre["checkpoint"] == str(ckpt) and pre["samples"] == 56
    from curate.store.fo_store import load_dataset

    oof = np.load(ckpt.with_suffix(".oof.npz"))
    ds = load_dataset(name, create=False)
    ds.reload()  # written by the CLI processes: refresh this process's cached schema
    stored = dict(zip(*ds.values(["sample_uid", "prelabel_oof"])))
    assert all(np.allclose(stored[u], p, atol=1e-6) for u, p in zip(oof["uids"].tolist(), oof["probs"]))


@pytest.mark.slow  # ~30 s (a Ray start); CI runs it (.ci/run)
def test_ray_inference_actors_store_what_local_prelabel_stores(tiny_dataset) -> None:  # noqa: ANN001
    """`prelabel --engine ray` (two actors on a local Ray): the same label, confidence, logits and embedding per
    sample as the local engine, though the chunks come back in any order."""
    from tests.test_engines import _require_ray

    _require_ray()
    from curate.prelabel.stage import prelabel
    from curate.store.fo_store import load_dataset

    name, home, url = tiny_dataset
    teacher = _teacher(name, home, url, seed=5)

    def stored() -> dict:
        ds = load_dataset(name, create=False)
        ds.reload()
        uids, labels, conf, logits, emb = ds.values(["sample_uid", "prelabel.label", "prelabel.confidence", "prelabel.logits",
                                                     "embedding"])
        return {u: (lb, c, np.asarray(lg), np.asarray(e)) for u, lb, c, lg, e in zip(uids, labels, conf, logits, emb) if lb is not None}

    local = prelabel(name, url, Path(teacher["checkpoint"]), batch_size=16, device="cpu", workers=0, chunk_size=20)
    before = stored()
    cleared = load_dataset(name, create=False)  # what is read next can only come from the Ray run
    cleared.clear_sample_field("prelabel")
    cleared.clear_sample_field("embedding")
    assert stored() == {}
    ray = prelabel(name, url, Path(teacher["checkpoint"]), batch_size=16, device="cpu", workers=0, chunk_size=20, engine="ray", ray_workers=2)
    after = stored()
    assert ray["samples"] == local["samples"] == len(after) == 84 and ray["predicted"] == local["predicted"]
    for uid, (label, confidence, logits, embedding) in before.items():
        other = after[uid]
        assert other[0] == label and other[1] == pytest.approx(confidence, abs=1e-5)
        assert np.allclose(other[2], logits, atol=1e-4) and np.allclose(other[3], embedding, atol=1e-4)


@pytest.mark.parametrize("samples,actors,batch", [(1983, 2, 64), (84, 2, 16), (5, 4, 64), (400_000, 8, 64), (1, 1, 1)])
def test_ray_tasks_give_every_actor_work_without_outgrowing_the_memory_bound(samples: int, actors: int, batch: int) -> None:
    """A 2,000-face dataset in one 8,192-face chunk ran on one of two actors (measured: 2 actors at half the speed of
    1). Tasks must be whole batches, at most the memory-bounded chunk, and at least as many as actors whenever
    there are enough batches to share."""
    from curate.prelabel.stage import CHUNK_SIZE, ray_chunk_size

    size = ray_chunk_size(samples, CHUNK_SIZE, actors, batch)
    tasks = -(-samples // size)
    assert size % batch == 0 and batch <= size <= max(CHUNK_SIZE, batch)
    assert tasks >= min(actors, -(-samples // batch))
