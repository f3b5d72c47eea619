"""The CPU recipe's student learns (issue 39): a MobileNetV2 trained with the default workflow's retrain settings must
beat always answering the majority class by a clear margin, on faces it never saw.

Learnable synthetic faces (tests/builders.expression_face: mouth, brows and eyes follow the expression), imbalanced
like FER2013 (many happy faces, few disgusted ones), so the test passes only if the student learns the expressions and
the class balancing lets the rare classes through. The same recipe on FER2013 is ``python -m bench.cpu_student``
(bench/RESULTS.md, "CPU student"). Before issue 39 this recipe's network sat at chance: timm draws a MobileNetV2's
classifier for 1,000 classes, and with 8 its first answers were confident and random (curate/models/factory.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml

from tests import builders
from tests.helpers import REPO

# Imbalanced as FER2013 is (happy 25 %, disgust 1.5 %), scaled down so the test trains in seconds.
TRAIN_PER_CLASS = {"happy": 90, "neutral": 60, "sad": 60, "fear": 50, "anger": 50, "surprise": 40, "disgust": 15}
TEST_PER_CLASS = 16


def workflow_retrain() -> dict:
    """The retrain stage's parameters in the default workflow: what `make run` trains."""
    stages = yaml.safe_load((REPO / "workflows" / "fer2013.yaml").read_text())["stages"]
    return {k: v for k, v in next(s for s in stages if s["stage"] == "retrain").items() if k != "stage"}


def _faces(root: Path, counts: dict[str, int], split: str, offset: int) -> list:
    from curate.models.manifest import Row

    rows = []
    for k, (emotion, n) in enumerate(counts.items()):
        for i in range(n):
            seed = offset + 1000 * k + i
            path = builders.write_image(root / split / f"{emotion}_{i:03d}.png", builders.expression_face(seed, emotion))
            rows.append(Row(path.name, str(path), emotion, split))
    return rows


def test_the_cpu_recipes_student_beats_the_majority_class_by_a_clear_margin(tmp_path: Path) -> None:
    from curate.models.checkpoint import load_checkpoint
    from curate.models.config import RetrainConfig
    from curate.models.fit import fit
    from curate.models.infer import predict
    from curate.models.manifest import split_rows
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS

    recipe = workflow_retrain()
    assert recipe["arch"].startswith("mobilenetv2"), "the test trains what `make run` trains"
    known = {f.name for f in dataclasses.fields(RetrainConfig)}
    # The recipe as written, without distillation (no teacher here: the student must learn from the labels alone), with
    # epochs and batch scaled to 425 faces.
    settings = {k: v for k, v in recipe.items() if k in known and k not in ("distill", "epochs", "batch_size")}
    cfg = RetrainConfig(**{**settings, "epochs": 10, "batch_size": 32, "device": "cpu", "workers": 0})
    train, val, _ = split_rows(_faces(tmp_path, TRAIN_PER_CLASS, "train", 0), seed=0)
    test = _faces(tmp_path, {e: TEST_PER_CLASS for e in TRAIN_PER_CLASS}, "test", 500)
    result = fit(train, val, list(EMOTIONS), cfg, tmp_path / "run", {})

    model, side = load_checkpoint(tmp_path / "run" / "best.safetensors")
    logits, _ = predict(model, test, side["classes"], Preprocess.from_dict(side["preprocess"]), 64, "cpu")
    y = np.array([EMOTIONS.index(r.label) for r in test])
    predicted = logits.argmax(1)
    accuracy = float((predicted == y).mean())
    recall = [float((predicted[y == c] == c).mean()) for c in np.unique(y)]
    majority = max(TEST_PER_CLASS for _ in TRAIN_PER_CLASS) / len(test)  # a balanced test set: 1/7 for any one answer
    curve = [round(h["val"]["accuracy"], 2) for h in result["history"]]
    assert accuracy >= majority + 0.35, f"test accuracy {accuracy:.2f} vs {majority:.2f} always answering one class; val {curve}"
    assert float(np.mean(recall)) >= 0.45 and min(recall) > 0.0, f"per-class recall {recall}"
