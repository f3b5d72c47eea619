"""The teacher's fold models trained side by side in their own processes (curate/models/members.py): the same models
as one after another, every epoch reported here, and a member that fails stops the run in one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.exceptions import CurateError
from tests import builders

EMOTIONS7 = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _rows(folder: Path, per_class: int = 8) -> list:
    from curate.models.manifest import Row

    rows = []
    for k, emotion in enumerate(EMOTIONS7):
        for i in range(per_class):
            path = builders.write_image(folder / f"{emotion}_{i:02d}.png", builders.expression_face(100 * k + i, emotion))
            rows.append(Row(path.name, str(path), emotion, "train"))
    return rows


def _config(**kw):  # noqa: ANN003, ANN202
    from curate.models.config import TrainConfig

    return TrainConfig(**{"arch": "fer_cnn", "random_crop": 40, "epochs": 2, "batch_size": 16, "device": "cpu", "workers": 0, **kw})


def _fit(rows: list, out: Path, parallel_folds: int, said: list[str], images: list[int] | None = None) -> dict:
    from curate.models.manifest import split_rows
    from curate.models.teacher import TeacherOptions, fit_teacher

    train, val, _ = split_rows(rows, 0)
    opts = TeacherOptions(dataset="synthetic", config=_config(), folds=2, parallel_folds=parallel_folds, out=out)
    return fit_teacher(opts, train, val, [], out, said.append, images.append if images is not None else None)


def test_fold_models_trained_side_by_side_are_the_models_trained_one_after_another(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from curate.models.members import usable_cores

    rows = _rows(tmp_path / "faces")
    side_said: list[str] = []
    images: list[int] = []
    side = _fit(rows, tmp_path / "side", 2, side_said, images)
    # One after another, with the threads each side-by-side process had: the same arithmetic, so the same weights.
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() // 2))
    try:
        seq_said: list[str] = []
        sequential = _fit(rows, tmp_path / "seq", 1, seq_said)
    finally:
        torch.set_num_threads(threads)

    assert any("side by side: 2 processes" in line for line in side_said), side_said
    for member in (1, 2):
        epochs = [line for line in side_said if f"fold {member}, epoch" in line]
        assert len(epochs) == 2 and "epoch 2/2" in epochs[-1], side_said
    assert not any("side by side" in line for line in seq_said) and any("fold model 2/2" in line for line in seq_said), seq_said
    assert sum(images) >= 2 * 2 * 16  # the member processes' training progress reached this process's callback

    for folder in ("fold-0", "fold-1"):
        a = load_file(Path(side["run_dir"]) / folder / "best.safetensors")
        b = load_file(Path(sequential["run_dir"]) / folder / "best.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{folder} differs"
    assert side["oof"]["samples"] == sequential["oof"]["samples"] == len(rows)
    assert side["val_metrics"] == sequential["val_metrics"]
    _epochs_are_ranked_without_the_mirror_image(rows, Path(side["run_dir"]) / "fold-0" / "epoch-002.safetensors")


def _epochs_are_ranked_without_the_mirror_image(rows: list, checkpoint: Path) -> None:
    """A member's epoch record is its checkpoint evaluated on val without flip TTA (RetrainConfig.val_tta), although the
    recipe, and so the teacher's own metrics, use it."""
    from dataclasses import replace

    import numpy as np

    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.manifest import split_rows
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS

    _, val, _ = split_rows(rows, 0)
    model, sidecar = load_checkpoint(checkpoint)
    pp = Preprocess.from_dict(sidecar["preprocess"])
    assert pp.tta_flip and sidecar["train_config"]["val_tta"] is False
    y = np.array([EMOTIONS.index(r.label) for r in val])
    plain, _ = predict(model, val, list(EMOTIONS), replace(pp, tta_flip=False), 16, "cpu")
    assert sidecar["metrics"]["accuracy"] == float((plain.argmax(1) == y).mean())


def test_a_member_that_fails_stops_the_run_in_one_line_naming_it(tmp_path: Path) -> None:
    import os

    from curate.models.manifest import split_rows
    from curate.models.oof import stratified_folds

    rows = _rows(tmp_path / "faces")
    train, _, _ = split_rows(rows, 0)
    folds = stratified_folds([r.label for r in train], 2, _config().seed)
    victim = next(r for r, f in zip(train, folds) if f == 0)  # in fold 0, so fold model 2 trains on it
    os.remove(victim.path)
    with pytest.raises(CurateError) as err:
        _fit(rows, tmp_path / "run", 2, [])
    message = str(err.value)
    assert message.startswith("fold model 2: training failed: ") and victim.path in message and "\n" not in message, message


def test_members_train_side_by_side_only_where_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.models import members
    from curate.models.config import RetrainConfig
    from curate.models.manifest import Row

    def jobs(count: int, faces: int) -> list:
        return [members.MemberJob(f, [Row("u", "x.png", "sad", "train")] * faces, Path(f"fold-{f}"), None) for f in range(count)]

    monkeypatch.setattr(members, "usable_cores", lambda: 2)
    cpu = RetrainConfig(device="cpu")
    assert members.members_at_once(0, jobs(2, 2000), cpu) == 2, "two members of 2,000+ faces on two cores: side by side"
    assert members.members_at_once(0, jobs(5, 5000), cpu) == 2, "never more processes than cores"
    assert members.members_at_once(0, jobs(2, 1999), cpu) == 1, "too small to repay a process start"
    assert members.members_at_once(0, jobs(1, 9000), cpu) == 1, "one member left (a resumed run): nothing to share"
    assert members.members_at_once(0, jobs(2, 9000), RetrainConfig(device="cpu", nproc=2)) == 1, "data-parallel has its own processes"
    assert members.members_at_once(3, jobs(2, 10), cpu) == 2 and members.members_at_once(1, jobs(2, 9000), cpu) == 1, "asked for: obeyed"
    monkeypatch.setattr(members, "usable_cores", lambda: 1)
    assert members.members_at_once(0, jobs(2, 9000), cpu) == 1


def test_a_teacher_without_epoch_files_keeps_best_and_last_per_fold_model_and_the_same_weights(tmp_path: Path) -> None:
    """Issue 40: `keep_epochs: false` (workflows/fer2013-full.yaml's ResNet-50 teacher) leaves no file per epoch in any
    fold model's folder, and the teacher it makes holds the same weights as one trained with them."""
    import dataclasses

    import torch
    from safetensors.torch import load_file

    from curate.models.manifest import split_rows
    from curate.models.teacher import TeacherOptions, fit_teacher

    train, val, _ = split_rows(_rows(tmp_path / "faces", per_class=6), 0)
    runs = {}
    for keep in (True, False):
        cfg = dataclasses.replace(_config(), keep_epochs=keep, state_every=0.0 if keep else 1e9)
        opts = TeacherOptions(dataset="synthetic", config=cfg, folds=2, parallel_folds=1, out=tmp_path / f"keep-{keep}")
        runs[keep] = Path(fit_teacher(opts, train, val, [], tmp_path / f"keep-{keep}", lambda _m: None)["run_dir"])
    for folder in ("fold-0", "fold-1"):
        names = sorted(p.name for p in (runs[False] / folder).iterdir())
        assert not [n for n in names if n.startswith("epoch-")] and {"best.safetensors", "last.safetensors", "state.pt"} <= set(names)
        a, b = load_file(runs[False] / folder / "best.safetensors"), load_file(runs[True] / folder / "best.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), folder
