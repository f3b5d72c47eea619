"""Ingest into real FiftyOne + SQLite: layouts, bad input, idempotency, kill -9 and resume, quality, duplicates."""

from __future__ import annotations

import collections
import itertools
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests import builders
from tests.helpers import kill_group_once_rows, last_json, run_cli, sql_rows

_names = itertools.count()


def _name(prefix: str) -> str:
    return f"t{os.getpid()}_{prefix}_{next(_names)}"


def _ingest_inprocess(kind: str, root: Path, home: Path, url: str | None = None, **kw) -> dict:  # noqa: ANN003
    from curate.ingest.stage import IngestOptions, ingest

    options = IngestOptions(kind=kind, root=root, dataset=kw.pop("dataset", _name(kind)), workers=1, **kw)
    return ingest(options, url or _ledger(home), home)


def _labels_by_path(dataset: str, root: Path) -> dict[str, tuple[str | None, str | None]]:
    from curate.store.fo_store import load_dataset

    ds = load_dataset(dataset, create=False)
    paths, labels, splits = ds.values(["filepath", "ground_truth.label", "split"])
    out = {}
    for p, label, split in zip(paths, labels, splits):
        out[Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else p] = (label, split)
    return out


def _ledger(home: Path) -> str:
    """The ledger `curate` uses by default: SQLite in CURATE_HOME."""
    return f"sqlite:///{home / 'curate.db'}"


@pytest.mark.parametrize(
    "kind,builder",
    [
        ("affectnet", builders.affectnet_original),
        ("affectnet", builders.affectnet_npy),
        ("affectnet", builders.affectnet_class_folders),
        ("affectnet", builders.affectnet_yolo),
        ("fer2013", builders.fer2013_folders),
        ("ckplus", builders.ckplus),
        ("rafdb", builders.rafdb),
        ("folder", builders.folder_unlabeled),
    ],
)
def test_every_layout_lands_mapped_with_counts_that_add_up(tmp_path: Path, curate_home: Path, kind: str, builder) -> None:  # noqa: ANN001
    built = builder(tmp_path / "ds")
    name = _name(kind)
    s = _ingest_inprocess(kind, built.root, curate_home, dataset=name)
    assert s["seen"] == s["ingested"] + sum(s["rejected"].values())
    assert s["ingested"] == len(built.expected)
    assert s["rejected"] == dict(collections.Counter(built.rejected.values()))
    assert _labels_by_path(name, built.root) == built.expected
    n_labeled = sum(1 for label, _ in built.expected.values() if label is not None)
    assert sql_rows(_ledger(curate_home), f"SELECT count(*) FROM samples s JOIN datasets d ON d.id = s.dataset_id WHERE d.name = '{name}'") == [(len(built.expected),)]
    assert sql_rows(_ledger(curate_home), "SELECT count(*) FROM label_events WHERE source = 'dataset'")[0][0] == n_labeled
    rejected_sql = dict(sql_rows(_ledger(curate_home), f"SELECT source_path, reason FROM ingest_rejections r JOIN datasets d ON d.id = r.dataset_id WHERE d.name = '{name}'"))
    assert rejected_sql == built.rejected
    if kind == "affectnet" and builder is builders.affectnet_original:
        assert s["no_emotion"] == {"none": 2, "uncertain": 2, "no-face": 2}


def test_affectnet_fields_in_fiftyone(tmp_path: Path, curate_home: Path) -> None:
    built = builders.affectnet_original(tmp_path / "an")
    name = _name("fields")
    _ingest_inprocess("affectnet", built.root, curate_home, dataset=name)
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    sample = ds.match({"filepath": {"$regex": "img_train_1.jpg$"}}).first()
    assert sample.ground_truth.label == "happy" and sample.source_label == "1" and sample.split == "train"
    assert sample.face.bounding_box == pytest.approx([16 / 128, 16 / 128, 96 / 128, 96 / 128])
    assert len(sample.landmarks.keypoints[0].points) == 68
    assert sample.valence == 0.25 and sample.arousal == -0.5
    assert 0.0 <= sample.blur <= 1.0 and 0.0 <= sample.occlusion <= 1.0
    assert sample.metadata.width == 128 and sample.label.label == "happy"
    assert set(ds.list_saved_views()) >= {"curated", "quality_rejected", "duplicates", "leakage"}


def test_fer2013_csv_ingest_keeps_usage(tmp_path: Path, curate_home: Path) -> None:
    built = builders.fer2013_csv(tmp_path / "fer")
    name = _name("csv")
    s = _ingest_inprocess("fer2013", built.root / "fer2013.csv", curate_home, dataset=name)
    assert s["ingested"] == 21 and s["rejected"] == {"label_out_of_range": 1, "malformed_annotation": 1}
    from curate.store.fo_store import load_dataset

    usage = collections.Counter(load_dataset(name, create=False).values("usage"))
    assert usage == {"Training": 7, "PublicTest": 7, "PrivateTest": 7}


def test_a_corrected_fer2013_csv_row_gets_its_new_pixels(tmp_path: Path, curate_home: Path) -> None:
    """Re-ingesting a corrected fer2013.csv must not keep the old PNG of that row."""
    import csv as csvmod

    import cv2

    built = builders.fer2013_csv(tmp_path / "fer")
    name = _name("csvfix")
    _ingest_inprocess("fer2013", built.root / "fer2013.csv", curate_home, dataset=name)
    rows = list(csvmod.reader(open(built.root / "fer2013.csv", newline="")))
    corrected = np.full(48 * 48, 77, np.uint8)
    corrected[::7] = 200
    rows[1][1] = " ".join(str(v) for v in corrected)  # csv line 2 = the first face
    with open(built.root / "fer2013.csv", "w", newline="") as fh:
        csvmod.writer(fh).writerows(rows)
    _ingest_inprocess("fer2013", built.root / "fer2013.csv", curate_home, dataset=name)
    from curate.store.fo_store import load_dataset

    paths = [p for p in load_dataset(name, create=False).values("filepath") if Path(p).name.startswith("00000-")]
    pixels = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in paths]
    assert any(np.array_equal(px.reshape(-1), corrected) for px in pixels), "the corrected row still shows the old pixels"


def test_an_unreadable_file_is_rejected_as_unreadable_even_when_tests_run_as_root(tmp_path: Path) -> None:
    """Mode 000 stops every user but root; as root (CI) the check runs with the effective uid of
    'nobody', so the fault is real rather than silently becoming a readable file."""
    import contextlib

    import cv2

    from curate.quality.decode import DecodeError, decode_face

    os.chmod(tmp_path, 0o755)
    target = tmp_path / "face.jpg"
    target.write_bytes(cv2.imencode(".jpg", builders.face(5))[1].tobytes())
    os.chmod(target, 0)

    @contextlib.contextmanager
    def as_nobody():  # noqa: ANN202
        if os.geteuid() != 0:
            yield
            return
        os.seteuid(65534)
        try:
            yield
        finally:
            os.seteuid(0)

    parents = [p for p in tmp_path.parents if p != Path("/")]
    modes = {p: p.stat().st_mode for p in parents}
    try:
        for p in parents:  # let 'nobody' reach the file; the file itself stays mode 000
            os.chmod(p, modes[p] | 0o011)
        with as_nobody(), pytest.raises(DecodeError) as caught:
            decode_face(target)
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)
    assert caught.value.reason == "unreadable"


def test_bad_input_corpus_via_cli(tmp_path: Path, curate_home: Path, ledger_db: str) -> None:
    built = builders.bad_inputs(tmp_path / "bad")
    name = _name("bad")
    proc = run_cli("ingest", "folder", str(built.root), "--dataset", name, "--workers", "1", "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    s = last_json(proc)
    assert s["seen"] == len(built.expected) + len(built.rejected) == s["ingested"] + sum(s["rejected"].values())
    assert s["rejected"] == dict(collections.Counter(built.rejected.values()))
    report = Path(s["rejected_report"]).read_text()
    for rel in built.rejected:
        assert rel in report
    # Re-running the same ingest adds nothing.
    again = last_json(run_cli("ingest", "folder", str(built.root), "--dataset", name, "--workers", "1", "--json"))
    assert again["new"] == 0 and again["ingested"] == s["ingested"] and again["samples_in_dataset"] == s["ingested"]
    assert sql_rows(ledger_db, "SELECT count(*) FROM samples")[0][0] == s["ingested"]


def test_unusable_root_is_one_line_error_exit_2(tmp_path: Path, curate_home: Path) -> None:
    (tmp_path / "empty").mkdir()
    for args in (("affectnet", str(tmp_path / "empty")), ("rafdb", str(tmp_path / "missing"))):
        proc = run_cli("ingest", *args, "--json", check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert last_json(proc)["ok"] is False


def test_kill_dash_nine_then_resume_completes_without_duplicates(tmp_path: Path, curate_home: Path, ledger_db: str) -> None:
    built = builders.fer2013_folders(tmp_path / "fer", per_class=40)
    total = len(built.expected)
    name = _name("kill")
    exe = Path(os.sys.executable).parent / "curate"
    args = [str(exe), "ingest", "fer2013", str(built.root), "--dataset", name, "--workers", "1", "--write-batch", "16"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    written = kill_group_once_rows(proc, ledger_db, 32, timeout=120)
    assert 0 < written < total, f"kill landed at {written}/{total}: not mid-way"
    s = last_json(run_cli("ingest", "fer2013", str(built.root), "--dataset", name, "--workers", "1", "--json"))
    assert s["ingested"] == total and s["seen"] == total and s["rejected"] == {}
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    paths = ds.values("filepath")
    assert len(paths) == len(set(paths)) == total
    assert sql_rows(ledger_db, "SELECT count(*), count(DISTINCT uid) FROM samples") == [(total, total)]
    assert sql_rows(ledger_db, "SELECT count(*) FROM label_events") == [(total,)]


def test_a_write_that_fails_on_the_writer_thread_stops_ingest_and_a_rerun_completes(tmp_path: Path, curate_home: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The writes run on a thread of their own: its failure must reach the caller (not die with the thread while
    scoring goes on), the batches written before it stay whole, and a re-run adds exactly the rest."""
    from curate.store import fo_store

    built = builders.fer2013_folders(tmp_path / "fer", per_class=12)
    total, name, url = len(built.expected), _name("wfail"), _ledger(curate_home)
    real_add, calls = fo_store.add_samples, []

    def add_then_fail(ds, samples):  # noqa: ANN001, ANN202
        calls.append(len(samples))
        if len(calls) == 3:
            raise RuntimeError("mongod went away")
        real_add(ds, samples)

    monkeypatch.setattr(fo_store, "add_samples", add_then_fail)
    with pytest.raises(RuntimeError, match="mongod went away"):
        _ingest_inprocess("fer2013", built.root, curate_home, url, dataset=name, write_batch=16)
    assert len(calls) == 3, "nothing is written after the failed batch"
    ds = fo_store.load_dataset(name, create=False)
    assert len(ds) == 32  # the two batches before the failure, whole
    monkeypatch.setattr(fo_store, "add_samples", real_add)
    again = _ingest_inprocess("fer2013", built.root, curate_home, url, dataset=name, write_batch=16)
    assert again["already_present"] == 32 and again["new"] == total - 32 and again["ingested"] == total
    paths = ds.values("filepath")
    assert len(paths) == len(set(paths)) == total
    assert sql_rows(url, "SELECT count(*), count(DISTINCT uid) FROM samples") == [(total, total)]


def test_quality_thresholds_reapply_without_rescoring(tmp_path: Path, curate_home: Path, ledger_db: str) -> None:
    built = builders.fer2013_folders(tmp_path / "fer")
    name = _name("quality")
    _ingest_inprocess("fer2013", built.root, curate_home, ledger_db, dataset=name)
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    blur_before = ds.values("blur")
    strict = last_json(run_cli("quality", "--dataset", name, "--blur-max", "0", "--occlusion-max", "1", "--json"))
    assert strict["removed"]["blur"] == sum(1 for b in blur_before if b > 0) and strict["removed"]["occlusion"] == 0
    ds.reload()
    assert ds.values("blur") == blur_before  # thresholds only, no re-scoring
    assert len(ds.load_saved_view("curated")) == strict["curated"] == len(ds) - strict["removed"]["blur"]
    assert sql_rows(ledger_db, "SELECT count(*) FROM samples WHERE quality_rejected = 'blur'")[0][0] == strict["removed"]["blur"]
    loose = last_json(run_cli("quality", "--dataset", name, "--blur-max", "1", "--occlusion-max", "1", "--json"))
    assert loose["curated"] == len(ds) and loose["changed"] == strict["removed"]["blur"]
    assert sql_rows(ledger_db, "SELECT count(*) FROM samples WHERE quality_rejected IS NOT NULL") == [(0,)]


def _quality_state(name: str, url: str) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(FiftyOne's, SQL's) quality_rejected per sample_uid, each read from its own store."""
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    ds.reload()
    in_fiftyone = {u: (",".join(r) or None) for u, r in zip(*ds.values(["sample_uid", "quality_rejected"]))}
    in_sql = dict(sql_rows(url, "SELECT uid, quality_rejected FROM samples"))
    return in_fiftyone, in_sql


def test_quality_writes_the_ledger_first_and_heals_when_fiftyone_failed_after_it(tmp_path: Path, curate_home: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger is the truth. A run that dies between the SQL write and the FiftyOne write leaves SQL with the new
    state and FiftyOne with the old one (SQL first); a re-run finds nothing to change in the ledger and brings
    FiftyOne in step. And when FiftyOne is ahead of SQL (a store rewritten behind curate's back), what changed is
    computed against SQL, so the ledger is healed too instead of staying stale for good."""
    import fiftyone as fo

    from curate.quality.apply import apply_thresholds

    built = builders.fer2013_folders(tmp_path / "fer")
    name = _name("qheal")
    _ingest_inprocess("fer2013", built.root, curate_home, dataset=name, blur_max=1.0, occlusion_max=1.0)
    url = _ledger(curate_home)
    before_fo, before_sql = _quality_state(name, url)
    assert set(before_fo.values()) == {None} and before_fo == before_sql
    real_set_values = fo.Dataset.set_values

    def fiftyone_down(self, field_name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if field_name == "quality_rejected":
            raise RuntimeError("FiftyOne's database went away")
        return real_set_values(self, field_name, *args, **kwargs)

    monkeypatch.setattr(fo.Dataset, "set_values", fiftyone_down)
    with pytest.raises(RuntimeError, match="went away"):
        apply_thresholds(name, url, 0.0, 0.0)  # everything with any blur or occlusion is removed
    monkeypatch.setattr(fo.Dataset, "set_values", real_set_values)
    after_fo, after_sql = _quality_state(name, url)
    assert after_fo == before_fo, "FiftyOne changed although its write failed"
    removed = {u for u, r in after_sql.items() if r}
    assert removed, "the ledger was not written before FiftyOne"
    again = apply_thresholds(name, url, 0.0, 0.0)
    healed_fo, healed_sql = _quality_state(name, url)
    assert healed_fo == healed_sql == after_sql and again["changed"] == 0  # the ledger already held it: nothing changed there
    assert len(healed_fo) - again["curated"] == len(removed)

    # FiftyOne ahead of SQL: FiftyOne says "kept" for everything, SQL still says "removed".
    from curate.store.fo_store import load_dataset

    load_dataset(name, create=False).set_values("quality_rejected", [[] for _ in healed_fo])
    loose = apply_thresholds(name, url, 1.0, 1.0)
    loose_fo, loose_sql = _quality_state(name, url)
    assert set(loose_sql.values()) == {None} == set(loose_fo.values()) and loose["changed"] == len(removed)


def test_cross_split_duplicates_are_flagged_and_listed(tmp_path: Path, curate_home: Path) -> None:
    root = tmp_path / "dup"
    img = builders.face(42, 96)
    builders.write_image(root / "train" / "happy" / "a.png", img)
    builders.write_image(root / "test" / "happy" / "a_copy.png", img)  # exact copy in test: leakage
    builders.write_image(root / "test" / "happy" / "a_reencoded.jpg", img)  # same face, other bytes: near
    # Unrelated pictures (the synthetic faces all look alike to a perceptual hash).
    builders.write_image(root / "train" / "sad" / "other.png", np.rot90(builders.face(43, 96)).copy())
    builders.write_image(root / "train" / "sad" / "other2.png", (np.indices((96, 96)).sum(0) % 17 * 15).astype(np.uint8))
    name = _name("dup")
    s = _ingest_inprocess("folder", root, curate_home, dataset=name)
    assert s["duplicates"]["groups"] == 1 and s["duplicates"]["exact"] == 1 and s["duplicates"]["near"] == 1
    assert s["duplicates"]["cross_split_groups"] == 1 and s["duplicates"]["cross_split_samples"] == 3
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    leak = ds.load_saved_view("leakage")
    assert sorted(Path(p).name for p in leak.values("filepath")) == ["a.png", "a_copy.png", "a_reencoded.jpg"]
    kinds = dict(zip((Path(p).name for p in leak.values("filepath")), leak.values("duplicate_kind")))
    assert kinds == {"a.png": "canonical", "a_copy.png": "exact", "a_reencoded.jpg": "near"}  # the train copy is kept


def test_a_group_that_dissolves_loses_its_marks_and_samples_outside_groups_stay_unmarked(tmp_path: Path, curate_home: Path) -> None:
    """mark_duplicates writes only group members and former members: a face whose twin is gone must be unmarked,
    and the faces in no group are never given marks."""
    from curate.ingest.mark_duplicates import mark_duplicates
    from curate.store.fo_store import load_dataset

    root = tmp_path / "dup"
    img = builders.face(42, 96)
    builders.write_image(root / "train" / "happy" / "a.png", img)
    builders.write_image(root / "train" / "happy" / "a_copy.png", img)
    builders.write_image(root / "train" / "sad" / "other.png", (np.indices((96, 96)).sum(0) % 17 * 15).astype(np.uint8))
    name = _name("dissolve")
    assert _ingest_inprocess("folder", root, curate_home, dataset=name)["duplicates"]["groups"] == 1
    ds = load_dataset(name, create=False)
    marks = lambda: {Path(p).name: (g, k, o is not None) for p, g, k, o in zip(*ds.values(["filepath", "duplicate_group", "duplicate_kind",  # noqa: E731
                                                                                              "duplicate_of"]))}
    assert marks() == {"a.png": (0, "canonical", False), "a_copy.png": (0, "exact", True), "other.png": (None, None, False)}
    ds.delete_samples(ds.match({"filepath": {"$regex": "a_copy"}}))
    assert mark_duplicates(ds, 4)["groups"] == 0
    assert marks() == {"a.png": (None, None, False), "other.png": (None, None, False)}
    assert len(ds.load_saved_view("duplicates")) == 0


def test_affectnet_class_folders_with_a_non_emotion_folder_keep_those_faces_unlabeled(tmp_path: Path, curate_home: Path) -> None:
    built = builders.affectnet_class_folders(tmp_path / "an")
    builders.write_image(built.root / "Train" / "misc" / "x.jpg", builders.face(999))
    s = _ingest_inprocess("affectnet", built.root, curate_home)
    assert s["ingested"] == len(built.expected) + 1 and s["no_emotion"] == {}
    assert _labels_by_path(s["dataset"], built.root)["Train/misc/x.jpg"] == (None, "train")


@pytest.mark.slow  # ~25 s; CI runs it (.ci/run)
def test_a_fiftyone_dataset_left_by_another_home_is_refused_in_one_line(tmp_path: Path) -> None:
    """FiftyOne's database outlives a CURATE_HOME: `make run` with a fresh home found the old FiftyOne
    dataset "already ingested", left the new ledger empty and failed two stages later ("0 labeled samples")."""
    from tests.helpers import run_cli

    built = builders.fer2013_folders(tmp_path / "fer", per_class=1)
    name = f"stale{os.getpid()}"
    first = run_cli("ingest", "fer2013", str(built.root), "--dataset", name, "--blur-max", "1", "--occlusion-max", "1",
                    env={"CURATE_HOME": str(tmp_path / "home-a")})
    assert first.returncode == 0
    again = run_cli("ingest", "fer2013", str(built.root), "--dataset", name, env={"CURATE_HOME": str(tmp_path / "home-b")}, check=False)
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert again.returncode != 0 and len(lines) == 1 and "Traceback" not in again.stderr, again.stderr
    assert f"FiftyOne dataset {name!r} holds {len(built.expected)} samples" in lines[0] and f"fiftyone datasets delete {name}" in lines[0]
    same_home = run_cli("ingest", "fer2013", str(built.root), "--dataset", name, "--json", env={"CURATE_HOME": str(tmp_path / "home-a")})
    assert '"already_present": %d' % len(built.expected) in same_home.stdout, "the home that made it resumes as before"


def test_blank_frames_leave_the_working_set_as_blank_not_blur(tmp_path: Path, curate_home: Path) -> None:
    """FER2013 ships a dozen all-black frames (and one of flat grey JPEG noise): they are removed as ``blank`` in
    FiftyOne, SQL, the summary and the report, whatever the blur threshold, while dark but real faces stay faces."""
    from curate.quality.apply import apply_thresholds
    from curate.report.build import build_report
    from curate.store.fo_store import load_dataset

    root = tmp_path / "fer"
    builders.fer2013_folders(root, per_class=1)
    builders.write_image(root / "train" / "angry" / "Training_black.jpg", np.zeros((48, 48), np.uint8))
    flat = np.full((48, 48), 129, np.uint8) + np.random.default_rng(0).integers(-2, 3, (48, 48)).astype(np.uint8)
    builders.write_image(root / "train" / "neutral" / "Training_flat.jpg", flat)
    dark = (builders.face(77) * 0.2).astype(np.uint8)  # a real face, very dark: low contrast, not blank
    builders.write_image(root / "train" / "happy" / "Training_dark.jpg", dark)
    name = _name("blank")
    s = _ingest_inprocess("fer2013", root, curate_home, dataset=name, blur_max=1.0, occlusion_max=1.0)
    assert s["quality_removed"] == {"blur": 0, "occlusion": 0, "blank": 2}
    ds = load_dataset(name, create=False)
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in zip(*ds.values(["filepath", "quality_rejected"]))}
    assert reasons["Training_black.jpg"] == ["blank"] and reasons["Training_flat.jpg"] == ["blank"]
    assert reasons["Training_dark.jpg"] == [] and sum(1 for r in reasons.values() if r) == 2
    url = _ledger(curate_home)
    assert sorted(p for p, in sql_rows(url, "SELECT source_path FROM samples WHERE quality_rejected = 'blank'")) == \
        ["train/angry/Training_black.jpg", "train/neutral/Training_flat.jpg"]
    again = apply_thresholds(name, url, 1.0, 1.0)  # no threshold keeps a frame without a face
    assert again["removed"]["blank"] == 2 and again["changed"] == 0
    report = build_report(name, url, curate_home)
    assert report["removed_blank"] == 2 and "Blank frames: 2 images" in Path(report["report"]).read_text()


def test_a_link_that_leaves_the_dataset_root_is_rejected_and_never_read(tmp_path: Path, curate_home: Path) -> None:
    """A class folder holding ``x.png -> /elsewhere/private.png`` must not pull that file into the dataset (and from there
    into Label Studio or the App); a link that stays inside the root is an ordinary input."""
    root = tmp_path / "faces"
    builders.write_image(root / "happy" / "a.png", builders.face(1))
    private = builders.write_image(tmp_path / "elsewhere" / "private.png", builders.face(2))
    (root / "happy" / "link_out.png").symlink_to(private)
    (root / "sad").mkdir(parents=True)
    (root / "sad" / "link_in.png").symlink_to(root / "happy" / "a.png")
    name = _name("links")
    s = _ingest_inprocess("folder", root, curate_home, dataset=name, blur_max=1.0, occlusion_max=1.0)
    assert s["seen"] == 3 and s["ingested"] == 2 and s["rejected"] == {"outside_root": 1}
    listed = (Path(s["rejected_report"])).read_text()
    assert "happy/link_out.png" in listed and "outside_root" in listed and str(private) not in listed
    paths = sql_rows(_ledger(curate_home), "SELECT source_path FROM samples ORDER BY source_path")
    assert paths == [("happy/a.png",), ("sad/link_in.png",)]
