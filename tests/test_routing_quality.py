"""Routing that finds real label errors (issue 28): the default workflow's teacher, trained on labels of which 20 % were
flipped to each expression's confusable partner, must put the flipped faces at the head of the review queue.

Learnable synthetic faces (tests/builders.expression_face), a few hundred of them, so the whole product path runs in
seconds: the teacher stage's own ``fit_teacher`` with the default workflow's recipe (only epochs and batch size scaled to
the tiny set), cleanlab on its out-of-fold probabilities (curate.errors.analysis) and `review push`'s routing. The
same measurement on FER2013 is ``python bench/cpu_teacher.py --noise confusable`` (bench/RESULTS.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests import builders
from tests.helpers import REPO

sys.path.insert(0, str(REPO))
from bench._data import FER_CLASSES, inject_noise, routing_lift  # noqa: E402
from bench.cpu_teacher import workflow_teacher  # noqa: E402

PER_CLASS = 40


def test_the_default_teacher_trained_on_noisy_labels_puts_flipped_faces_first_in_the_queue(tmp_path: Path) -> None:
    from curate.models.config import TrainConfig
    from curate.models.manifest import Row, split_rows
    from curate.models.teacher import TeacherOptions, fit_teacher

    rows = []
    for k, emotion in enumerate(FER_CLASSES):
        for i in range(PER_CLASS):
            path = builders.write_image(tmp_path / "faces" / f"{emotion}_{i:03d}.png", builders.expression_face(1000 * k + i, emotion))
            rows.append(Row(path.name, str(path), emotion, "train"))
    noisy, flipped = inject_noise(rows, "confusable", 0.2, seed=0)
    flipped_by_uid = {r.uid: bool(f) for r, f in zip(noisy, flipped)}
    recipe = workflow_teacher()
    assert recipe["arch"].startswith("fer_cnn") and recipe["random_crop"] == 40, "the test trains what `make run` trains"
    config = TrainConfig(**{**recipe, "epochs": 12, "batch_size": 32, "device": "cpu", "workers": 0})
    train, val, _ = split_rows(noisy, 0)
    result = fit_teacher(TeacherOptions(dataset="synthetic", config=config, folds=2, out=tmp_path / "run"), train, val, [], tmp_path / "run")

    z = np.load(Path(result["checkpoint"]).with_suffix(".oof.npz"))
    index = {str(u): i for i, u in enumerate(z["uids"])}
    scored = [*train, *val]
    probs = np.asarray(z["probs"], np.float64)[[index[r.uid] for r in scored]]
    size = len(scored) // 7
    lift = routing_lift([r.label for r in scored], np.array([flipped_by_uid[r.uid] for r in scored]), probs, result["temperature"], (size,))
    queue = lift["queues"]["likelihood"][str(size)]
    assert lift["flipped_share"] == np.float64(0.2)
    assert queue["queued"] == size and queue["flipped_share"] >= 1.5 * lift["flipped_share"], lift
    assert queue["flipped_share"] > lift["queues"]["random"][str(size)]["flipped_share"], lift
