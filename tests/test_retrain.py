"""Retraining: balanced draws, distillation, per-epoch checkpoints in the registry, exact resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from curate.models.balance import class_weights, epoch_indices
from curate.models.config import RetrainConfig
from curate.models.fit import distillation_loss, fit
from curate.models.manifest import Row
from curate.taxonomy import EMOTIONS
from tests import builders
from tests.helpers import ingest_unfiltered, sql_rows

LABELS = np.array([0] * 30 + [1] * 10 + [2] * 5)


def test_oversampling_equalises_classes_and_redraws_each_epoch() -> None:
    e1, e2 = epoch_indices(LABELS, "oversample", 0, 1), epoch_indices(LABELS, "oversample", 0, 2)
    assert np.bincount(LABELS[e1]).tolist() == [30, 30, 30]
    assert not np.array_equal(np.sort(e1), np.sort(e2))  # minority copies drawn anew
    assert np.array_equal(e1, epoch_indices(LABELS, "oversample", 0, 1))  # reproducible


def test_undersampling_and_class_weights() -> None:
    under = epoch_indices(LABELS, "undersample", 0, 1)
    assert np.bincount(LABELS[under]).tolist() == [5, 5, 5]
    assert epoch_indices(LABELS, "none", 0, 1).tolist() == list(range(45))
    w = class_weights(LABELS, 4)
    from sklearn.utils.class_weight import compute_class_weight

    assert w[3] == 0 and w[2] > w[1] > w[0]
    assert np.allclose(w[:3], compute_class_weight("balanced", classes=np.arange(3), y=LABELS))
    assert np.isclose(sum(w[i] * c for i, c in enumerate([30, 10, 5])), 45)


def test_distillation_loss() -> None:
    t = torch.randn(8, 8)
    assert distillation_loss(t.clone(), t, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(torch.randn(8, 8), t, 2.0).item() > 0


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Row], list[Row]]:
    built = builders.fer2013_folders(tmp_path_factory.mktemp("rt") / "fer", per_class=4)
    all_rows = [Row(p, str(built.root / p), label, split) for p, (label, split) in built.expected.items()]
    return [r for r in all_rows if r.split == "train"], [r for r in all_rows if r.split == "test"]


def _cfg(epochs: int) -> RetrainConfig:
    return RetrainConfig(arch="mobilenetv2_050", image_size=32, epochs=epochs, batch_size=8, device="cpu", workers=0,
                         max_steps_per_epoch=2, balance="oversample")


def test_resume_after_a_crash_continues_exactly(rows, tmp_path: Path) -> None:  # noqa: ANN001
    train, val = rows
    whole = fit(train, val, EMOTIONS, _cfg(3), tmp_path / "whole", {})

    class Crash(RuntimeError):
        pass

    def crash_after_two(record, ckpt) -> None:  # noqa: ANN001
        if record["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        fit(train, val, EMOTIONS, _cfg(3), tmp_path / "crashed", {}, on_epoch=crash_after_two)
    state = torch.load(tmp_path / "crashed" / "state.pt", weights_only=True)  # the saved state needs no pickled code
    assert state["epoch"] == 2 and not (tmp_path / "crashed" / "epoch-003.safetensors").exists()
    resumed = fit(train, val, EMOTIONS, _cfg(3), tmp_path / "crashed", {}, resume=tmp_path / "crashed" / "state.pt")
    assert resumed["started_at_epoch"] == 3 and [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "whole" / "epoch-003.safetensors"), load_file(tmp_path / "crashed" / "epoch-003.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    side = json.loads((tmp_path / "crashed" / "epoch-003.json").read_text())
    assert [h["epoch"] for h in side["history"]] == [1, 2, 3] and side["metrics"] == whole["history"][2]["val"]


def test_without_epoch_files_only_best_last_and_the_state_are_written_and_they_hold_the_same_weights(rows, tmp_path: Path,  # noqa: ANN001
                                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 40's write policy: ``keep_epochs`` off and a long ``state_every`` leave best, last and the resume state, written
    once at the end, bit-equal to the per-epoch files of the same run made the usual way; nothing is written in between."""
    import dataclasses

    from safetensors.torch import load_file

    from curate.models import fit as fit_module

    train, val = rows
    usual = fit(train, val, EMOTIONS, _cfg(3), tmp_path / "usual", {})
    writes: list[str] = []
    real_save = fit_module.save_checkpoint
    monkeypatch.setattr(fit_module, "save_checkpoint", lambda path, *a: (writes.append(path.name), real_save(path, *a))[1])
    lean = dataclasses.replace(_cfg(3), keep_epochs=False, state_every=1e9)
    saved_at: list[bool] = []
    result = fit(train, val, EMOTIONS, lean, tmp_path / "lean", {}, on_epoch=lambda record, _ckpt: saved_at.append(record["state_saved"]))
    assert saved_at == [False, False, True] and sorted(writes) == ["best.safetensors", "last.safetensors"]
    assert sorted(p.name for p in (tmp_path / "lean").iterdir()) == ["best.json", "best.safetensors", "last.json", "last.safetensors", "state.pt"]
    best = usual["best_epoch"]
    assert result["best_epoch"] == best
    for mine, theirs in (("best", f"epoch-{best:03d}"), ("last", "epoch-003")):
        a, b = load_file(tmp_path / "lean" / f"{mine}.safetensors"), load_file(tmp_path / "usual" / f"{theirs}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), mine
    assert json.loads((tmp_path / "lean" / "best.json").read_text())["epoch"] == best


def test_a_kill_between_state_writes_loses_only_the_epochs_since_the_last_write(rows, tmp_path: Path) -> None:  # noqa: ANN001
    """With ``state_every`` the resume state is written at most once per interval: a run killed before its first write
    starts again from scratch, and a run that resumes from a write made two epochs in ends bit-equal to an unbroken run."""
    import dataclasses

    from safetensors.torch import load_file

    train, val = rows
    whole = fit(train, val, EMOTIONS, dataclasses.replace(_cfg(3), keep_epochs=False), tmp_path / "whole", {})

    class Kill(RuntimeError):
        pass

    def kill_at(epoch: int):  # noqa: ANN202
        def on_epoch(record, _ckpt) -> None:  # noqa: ANN001
            if record["epoch"] == epoch:
                raise Kill
        return on_epoch

    never = dataclasses.replace(_cfg(3), keep_epochs=False, state_every=1e9)
    with pytest.raises(Kill):
        fit(train, val, EMOTIONS, never, tmp_path / "never", {}, on_epoch=kill_at(2))
    assert not (tmp_path / "never" / "state.pt").exists(), "no write before the interval: the two epochs are what is lost"
    every = dataclasses.replace(_cfg(3), keep_epochs=False)
    with pytest.raises(Kill):
        fit(train, val, EMOTIONS, every, tmp_path / "every", {}, on_epoch=kill_at(2))
    assert torch.load(tmp_path / "every" / "state.pt", weights_only=True)["epoch"] == 2
    resumed = fit(train, val, EMOTIONS, every, tmp_path / "every", {}, resume=tmp_path / "every" / "state.pt")
    assert resumed["started_at_epoch"] == 3 and resumed["best_epoch"] == whole["best_epoch"]
    a, b = load_file(tmp_path / "whole" / "last.safetensors"), load_file(tmp_path / "every" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # ~25 s; CI runs it (.ci/run)
def test_retrain_stage_registers_checkpoints_with_metrics(tmp_path: Path) -> None:
    from curate.retrain.stage import RetrainOptions, run_retrain

    built = builders.fer2013_folders(tmp_path / "fer", per_class=4)
    name, home, url = ingest_unfiltered(tmp_path, "fer2013", built.root, f"rt{os.getpid()}")
    cfg = RetrainConfig(arch="mobilenetv2_050", image_size=32, epochs=2, batch_size=8, device="cpu", max_steps_per_epoch=2, balance="undersample")
    s = run_retrain(RetrainOptions(dataset=name, config=cfg), url, home)
    assert set(s["class_counts_before"]) == {"happy", "sad", "surprise", "fear", "disgust", "anger", "neutral"}
    assert len(set(s["class_counts_after"].values())) == 1  # undersampled to the rarest class
    assert Path(s["best_checkpoint"]).is_file() and Path(s["report"]).stat().st_size > 10_000
    rows = sql_rows(url, "SELECT epoch, is_best, metrics FROM checkpoints ORDER BY epoch")
    assert [r[0] for r in rows] == [1, 2] and sum(r[1] for r in rows) == 1
    metrics = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert {"accuracy", "balanced_accuracy", "macro_f1", "per_class_recall", "confusion_matrix"} <= set(metrics)
    assert sql_rows(url, "SELECT status FROM model_runs WHERE kind = 'retrain'") == [("done",)]
    # The paired comparison of the two epochs runs on the same test samples through the CLI.
    from tests.helpers import last_json, run_cli

    out = Path(s["out_dir"])
    c = last_json(run_cli("compare", str(out / "epoch-001.safetensors"), str(out / "epoch-002.safetensors"), "--dataset", name, "--json",
                          env={"CURATE_HOME": str(home)}))
    # Recomputed here from the two checkpoints' own predictions, not taken from the command's report.
    from scipy.stats import binomtest

    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.manifest import from_dataset
    from curate.models.preprocess import Preprocess

    test = [r for r in from_dataset(name, url) if r.split == "test" and r.label]
    y = np.array([EMOTIONS.index(r.label) for r in test])
    right = []
    for ckpt in ("epoch-001.safetensors", "epoch-002.safetensors"):
        model, side = load_checkpoint(out / ckpt)
        right.append(predict(model, test, EMOTIONS, Preprocess.from_dict(side["preprocess"]), 16, "cpu")[0].argmax(1) == y)
    a_only, b_only = int((right[0] & ~right[1]).sum()), int((right[1] & ~right[0]).sum())
    assert c["n"] == len(test) == 28 and (c["a_only_correct"], c["b_only_correct"]) == (a_only, b_only)
    expected_p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    assert c["p_value"] == pytest.approx(expected_p)
    assert c["better"] == ("A" if a_only > b_only else "B" if b_only > a_only else "tie")
    assert c["accuracy_a"] == pytest.approx(right[0].mean(), abs=1e-5) and c["accuracy_b"] == pytest.approx(right[1].mean(), abs=1e-5)


def test_carved_validation_is_subject_disjoint_for_ckplus_and_stratified_otherwise() -> None:
    from curate.models.manifest import split_rows

    subjects = [f"S{i:03d}" for i in range(20)]
    ck = [Row(f"{s}_{k}", f"{s}_{k}.png", EMOTIONS[k % 7], "train", group=s) for s in subjects for k in range(5)]
    train, val, test = split_rows(ck, seed=3)
    assert val and not test and len(train) + len(val) == len(ck)
    assert not {r.group for r in train} & {r.group for r in val}
    assert len({r.group for r in val}) == 2  # 10 % of 20 subjects
    plain = [Row(str(i), f"{i}.jpg", EMOTIONS[i % 4], "train") for i in range(200)]
    train, val, _ = split_rows(plain, seed=3)
    counts = {c: sum(r.label == c for r in val) for c in EMOTIONS[:4]}
    assert len(val) == 20 and set(counts.values()) == {5}


def test_ckplus_rows_carry_their_subject(tmp_path: Path) -> None:
    from curate.models.manifest import from_dataset

    name, home, url = ingest_unfiltered(tmp_path, "ckplus", builders.ckplus(tmp_path / "ck").root, f"ck{os.getpid()}")
    assert {r.group for r in from_dataset(name, url)} == {"S005", "S010"}


class _Payload:
    """A pickle that runs code when loaded: what a hostile `state.pt` would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def test_resume_refuses_a_state_that_carries_code(tmp_path: Path) -> None:
    from curate.exceptions import CurateError
    from curate.models.fit import load_state

    marker = tmp_path / "pwned"
    evil = tmp_path / "state.pt"
    torch.save({"model": {}, "epoch": _Payload(marker)}, evil)
    with pytest.raises(CurateError, match="not a curate resume state"):
        load_state(evil)
    assert not marker.exists(), "loading the resume state ran its code"


def test_distillation_pulls_the_student_toward_the_teachers_logits(rows, tmp_path: Path) -> None:  # noqa: ANN001
    """Teacher logits that all favour one class reach the loss, row by row: the distilled student predicts
    that class far more often than the same run without distillation (everything else identical)."""
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess

    train, test = rows

    def predicted(distill: bool, teacher: np.ndarray | None) -> np.ndarray:
        cfg = RetrainConfig(arch="mobilenetv2_050", image_size=32, epochs=3, batch_size=8, device="cpu", workers=0,
                            max_steps_per_epoch=4, balance="none", distill=distill, kd_weight=0.9, ema_decay=0.0)
        out = tmp_path / f"distill-{distill}"
        fit(train, test, EMOTIONS, cfg, out, {}, teacher)
        model, side = load_checkpoint(out / "epoch-003.safetensors")
        logits, _ = predict(model, [*train, *test], EMOTIONS, Preprocess.from_dict(side["preprocess"]), 16, "cpu")
        return logits.argmax(1)

    plain = predicted(False, None)
    # The teacher favours the FER class the undistilled student predicts least (12 steps leave it far from learned, and
    # a near-uniform start can land on any one class), so the difference is the teacher's doing.
    favoured = min(range(7), key=lambda c: ((plain == c).mean(), c))
    teacher = np.full((len(train), len(EMOTIONS)), -4.0, np.float32)
    teacher[:, favoured] = 8.0
    share = {False: float((plain == favoured).mean()), True: float((predicted(True, teacher) == favoured).mean())}
    assert share[True] >= 0.8 and share[True] - share[False] >= 0.4, share


def test_distillation_refuses_logits_that_do_not_line_up_with_the_rows(rows, tmp_path: Path) -> None:  # noqa: ANN001
    train, test = rows
    cfg = RetrainConfig(arch="mobilenetv2_050", image_size=32, epochs=1, batch_size=8, device="cpu", workers=0, max_steps_per_epoch=1, distill=True)
    with pytest.raises(ValueError, match="every training row"):
        fit(train, test, EMOTIONS, cfg, tmp_path / "x", {}, np.zeros((len(train) - 1, len(EMOTIONS)), np.float32))


_DIE_AT_EPOCH_TWO = """
import os, signal, sys
from pathlib import Path

from curate.models.config import RetrainConfig
from curate.retrain.stage import RetrainOptions, run_retrain
from curate.store.sql import registry

real = registry.register_checkpoint


def dies_at_epoch_two(url, run_id, dataset, path, epoch, *rest):
    if epoch == 2:  # state.pt of epoch 2 is written; its registry row is not: kill -9, no finally block runs
        os.kill(os.getpid(), signal.SIGKILL)
    return real(url, run_id, dataset, path, epoch, *rest)


registry.register_checkpoint = dies_at_epoch_two
cfg = RetrainConfig(arch="mobilenetv2_050", image_size=32, epochs=3, batch_size=8, device="cpu", max_steps_per_epoch=1)
run_retrain(RetrainOptions(dataset=sys.argv[1], config=cfg, out=Path(sys.argv[4])), sys.argv[2], Path(sys.argv[3]))
"""


def test_a_kill_before_an_epoch_is_registered_is_repaired_by_resume(tmp_path: Path) -> None:
    """A real kill -9 of a retrain process after epoch 2's state.pt was written but before its registry row:
    the resumed run registers it, so every epoch has exactly one checkpoints row."""
    import subprocess
    import sys

    from curate.retrain.stage import RetrainOptions, run_retrain

    built = builders.fer2013_folders(tmp_path / "fer", per_class=2)
    name, home, url = ingest_unfiltered(tmp_path, "fer2013", built.root, f"reg{os.getpid()}")
    killed = subprocess.run([sys.executable, "-c", _DIE_AT_EPOCH_TWO, name, url, str(home), str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert [r[0] for r in sql_rows(url, "SELECT epoch FROM checkpoints ORDER BY epoch")] == [1]
    state = next((tmp_path / "runs").glob("retrain-*/state.pt"))
    assert int(torch.load(state, weights_only=True)["epoch"]) == 2
    cfg = RetrainConfig(arch="mobilenetv2_050", image_size=32, epochs=3, batch_size=8, device="cpu", max_steps_per_epoch=1)
    run_retrain(RetrainOptions(dataset=name, config=cfg, resume=state), url, home)
    assert [r[0] for r in sql_rows(url, "SELECT epoch FROM checkpoints ORDER BY epoch")] == [1, 2, 3]
    assert sql_rows(url, "SELECT status FROM model_runs WHERE kind = 'retrain'") == [("done",)]


def test_ddp_shards_are_disjoint_and_together_are_the_balanced_epoch() -> None:
    from collections import Counter

    from curate.models.distributed import Group, shard

    drawn = epoch_indices(LABELS, "oversample", seed=0, epoch=1)  # 90 indices, 30 per class, repeats included
    for world in (2, 3, 4):
        shards = [shard(drawn, Group(rank, world), seed=7) for rank in range(world)]
        assert len({len(s) for s in shards}) == 1, "every rank runs the same number of steps"
        positions = np.random.default_rng(7).permutation(len(drawn))[: len(drawn) - len(drawn) % world]
        assert Counter(np.concatenate(shards).tolist()) == Counter(drawn[positions].tolist()), "disjoint, and together the epoch"
        per_class = Counter(LABELS[np.concatenate(shards)].tolist())
        assert max(per_class.values()) - min(per_class.values()) <= world - 1, "the union stays class-balanced"
    assert shard(drawn, Group(0, 1), seed=7) is drawn


@pytest.mark.slow  # three launches of two training processes each; CI runs it (.ci/run)
def test_two_process_ddp_retrain_checkpoints_and_registers_once_and_resumes_after_kill_9(tmp_path: Path) -> None:
    """`curate retrain --nproc 2` (gloo on CPU): one set of checkpoints, one registry row per epoch, and a run
    killed with -9 then resumed ends tensor-for-tensor where an uninterrupted two-process run ends."""
    import signal
    import subprocess

    from safetensors.torch import load_file

    from tests.helpers import last_json, run_cli, wait_for

    built = builders.fer2013_folders(tmp_path / "fer", per_class=4)
    name, home, url = ingest_unfiltered(tmp_path, "fer2013", built.root, f"ddp{os.getpid()}")
    args = ["retrain", "--dataset", name, "--arch", "mobilenetv2_050", "--image-size", "32", "--epochs", "3", "--batch-size", "4",
            "--max-steps-per-epoch", "3", "--device", "cpu", "--nproc", "2", "--json"]
    env = {"CURATE_HOME": str(home)}
    whole = run_cli(*args, "--out", str(tmp_path / "whole"), env=env)
    w = last_json(whole)
    run_dir = Path(w["out_dir"])
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [f"epoch-00{e}.{x}" for e in (1, 2, 3) for x in ("safetensors", "json")] + ["best.safetensors", "best.json", "state.pt",
                                                                                    "result.json", "report.png"])
    assert "(2 processes)" in whole.stderr and json.loads((run_dir / "epoch-003.json").read_text())["train_config"]["nproc"] == 2
    assert sql_rows(url, f"SELECT epoch FROM checkpoints WHERE model_run_id = {w['model_run_id']} ORDER BY epoch") == [(1,), (2,), (3,)]

    exe = Path(os.sys.executable).parent / "curate"
    proc = subprocess.Popen([str(exe), *args, "--out", str(tmp_path / "killed")], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert wait_for(lambda: any((tmp_path / "killed").glob("retrain-*/state.pt")), timeout=300, interval=0.02)  # epoch 1 saved
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    killed_dir = next((tmp_path / "killed").glob("retrain-*"))
    assert not (killed_dir / "epoch-003.safetensors").exists(), "the kill landed after the run finished"
    resumed = last_json(run_cli(*args, "--resume", str(killed_dir / "state.pt"), env=env))
    assert resumed["resumed_from_epoch"] in (2, 3)
    rows = sql_rows(url, f"SELECT epoch FROM checkpoints WHERE model_run_id = {resumed['model_run_id']} ORDER BY epoch")
    assert rows == [(1,), (2,), (3,)], "each epoch registered once, those finished before the kill included"
    a, b = load_file(killed_dir / "epoch-003.safetensors"), load_file(run_dir / "epoch-003.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed DDP run differs from an uninterrupted one"
