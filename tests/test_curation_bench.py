"""The curation-efficiency benchmark (bench/curation.py) in small: a few hundred synthetic faces, a simulated
teacher of known accuracy, every answer through a real Label Studio, accuracy read back from the ledger.
So the benchmark cannot rot, and its figures are checked against what the ledger and the server hold."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import builders
from tests.helpers import REPO, sql_rows

sys.path.insert(0, str(REPO))
from bench import curation  # noqa: E402

CLASSES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")
SHARE = (0.10, 0.25, 0.25, 0.10, 0.12, 0.03, 0.15)  # imbalanced like FER2013


def _faces_and_teacher(root: Path, n: int, accuracy: float) -> Path:
    """train/<class>/*.jpg and an .npz of out-of-fold-like probabilities that are right ``accuracy`` of the time."""
    from curate.taxonomy import EMOTIONS

    rng = np.random.default_rng(7)
    names, probs = [], []
    for i in range(n):
        truth = CLASSES[rng.choice(len(CLASSES), p=SHARE)]
        name = f"face_{i:04d}.jpg"
        builders.write_image(root / "train" / truth / name, builders.face(i))
        top = truth if rng.random() < accuracy else str(rng.choice([c for c in CLASSES if c != truth]))
        logits = rng.normal(0, 1, len(EMOTIONS))
        logits[EMOTIONS.index(top)] += rng.uniform(1.0, 4.0)
        logits[EMOTIONS.index("contempt")] = -6
        names.append(name)
        probs.append(np.exp(logits) / np.exp(logits).sum())
    path = root / "teacher_oof.npz"
    np.savez(path, uids=np.array(names), probs=np.array(probs, np.float32))
    return path


@pytest.mark.slow  # ~6 minutes (16 runs through Label Studio): `make test-all` runs it
def test_small_curation_benchmark_through_label_studio(tmp_path: Path, curate_home: Path, label_studio,  # noqa: ANN001
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{curate_home / 'ledger.db'}"
    monkeypatch.setenv("CURATE_DB_URL", url)
    data = tmp_path / "fer"
    probs = _faces_and_teacher(data, 320, accuracy=0.75)
    faces = curation.load_faces(data, probs, 200, seed=0)
    files = tmp_path / "files"
    files.mkdir()
    info = label_studio(curate_home, files)
    budgets = (0.3, 0.5)  # 60 answers before the second round: enough for curate_rounds' re-fit (>= 50) to run
    summary = curation.run_benchmark(info["url"], info["token"], files, faces, ("unlabeled", "noisy_confusable"),
                                     ("random", "cleanlab", "curate", "curate_rounds"), budgets,
                                     {"noisy_confusable/curate": ("exact", "two_annotators", "two_activelab")}, progress=lambda _: None)

    n = summary["faces"]
    noisy, unlabeled = summary["scenarios"]["noisy_confusable"], summary["scenarios"]["unlabeled"]
    assert noisy["accuracy_without_review"] == pytest.approx(0.8)
    assert unlabeled["accuracy_without_review"] == pytest.approx(summary["teacher_accuracy"]) and 0.6 < summary["teacher_accuracy"] < 0.9
    assert unlabeled["cleanlab"]["accuracy_by_budget"] is None, "cleanlab has no labels to check when labels are hidden"
    for scenario in (noisy, unlabeled):
        for strategy in ("random", "curate", "curate_rounds"):
            row = scenario[strategy]
            assert row["through_label_studio"] is True
            assert row["reviewed_share_by_budget"] == {str(b): pytest.approx(b) for b in budgets}
            accs = [row["accuracy_by_budget"][str(b)] for b in budgets]
            assert accs == sorted(accs) and accs[0] >= scenario["accuracy_without_review"], "exact answers never make labels worse"

    # With exact reviewers every fixed flip is one more right label, and nothing else changes.
    for strategy in ("random", "cleanlab", "curate", "curate_rounds"):
        row = noisy[strategy]
        for b in budgets:
            found = row["flips_found_by_budget"][str(b)]
            assert row["accuracy_by_budget"][str(b)] == pytest.approx(0.8 + found / n)
            assert row["human_changes_by_budget"][str(b)] == found
    # A 75 % teacher finds confusable flips far better than chance: random finds about 0.2 x 60 = 12 at 30 %.
    random_found = noisy["random"]["flips_found_by_budget"]["0.3"]
    assert noisy["curate"]["flips_found_by_budget"]["0.3"] >= 1.5 * random_found
    assert noisy["curate_rounds"]["flips_found_by_budget"]["0.3"] >= 1.5 * random_found
    assert unlabeled["curate"]["accuracy_by_budget"]["0.3"] > unlabeled["random"]["accuracy_by_budget"]["0.3"]

    # Two annotators each wrong 5 %: a disagreement is a conflict and decides nothing, so accuracy cannot beat the exact reviewer's.
    two = noisy["curate/two_annotators"]
    assert two["accuracy_by_budget"]["0.3"] <= noisy["curate"]["accuracy_by_budget"]["0.3"]
    # The same two people and as many answers, spent by ActiveLab: one per new face, a second where it pays.
    active = noisy["curate/two_activelab"]
    assert active["reviewed_share_by_budget"] == {str(b): pytest.approx(b) for b in budgets}, "equal human effort at each budget"
    answers = _answers_per_task(info, f"bench_cur_{os.getpid()}_noisy_confusable_curate_two_activelab")
    assert sum(answers) == 2 * round(0.5 * n) and max(answers) == 2, "every answer was spent, some on second opinions"
    assert len(answers) > round(0.5 * n), "ActiveLab saw more faces than asking two people about every face"

    # The figures are the ledger's and the server's: one human label per answered face, tasks in Label Studio.
    dataset = f"bench_cur_{os.getpid()}_noisy_confusable_curate_exact"
    humans = sql_rows(url, "SELECT count(*) FROM label_events e JOIN samples s ON s.id = e.sample_id JOIN datasets d ON d.id = s.dataset_id "
                           "WHERE d.name = :name AND e.source = 'human'", name=dataset)[0][0]
    assert humans == round(0.5 * n)
    from label_studio_sdk import LabelStudio

    ls = LabelStudio(base_url=info["url"], api_key=info["token"])
    from curate.review.project import project_title

    project = next(p for p in ls.projects.list() if p.title == project_title(dataset))
    annotated = [t for t in ls.tasks.list(project=project.id, fields="all") if t.annotations]
    assert len(annotated) == round(0.5 * n)


def _answers_per_task(info: dict, dataset: str) -> list[int]:
    from label_studio_sdk import LabelStudio

    from curate.review.project import project_title

    ls = LabelStudio(base_url=info["url"], api_key=info["token"])
    project = next(p for p in ls.projects.list() if p.title == project_title(dataset))
    return [len(t.annotations) for t in ls.tasks.list(project=project.id, fields="all") if t.annotations]


def test_honest_probabilities_bring_the_labels_their_teacher_learned_from(tmp_path: Path) -> None:
    """An .npz from `bench/cpu_teacher.py --noise` carries the given (noisy) labels and the flip mask: the benchmark uses
    exactly those for the matching scenario, fits the temperature on them, and refuses a scenario the teacher never saw."""
    from curate.taxonomy import EMOTIONS

    data = tmp_path / "fer"
    probs_file = _faces_and_teacher(data, 300, accuracy=0.75)
    z = dict(np.load(probs_file))
    rng = np.random.default_rng(3)
    truth = {p.name: p.parent.name for p in (data / "train").rglob("*.jpg")}
    flipped = rng.random(len(z["uids"])) < 0.2
    given = [curation.CONFUSABLE[truth[u]] if f else truth[u] for u, f in zip(z["uids"], flipped)]
    honest = tmp_path / "honest.npz"
    np.savez(honest, uids=z["uids"], probs=z["probs"], given=np.array(given), flipped=flipped, noise=np.array("confusable"))

    faces = curation.load_faces(data, honest, 120, seed=0)
    labels, mask = curation.given_labels(faces, "noisy_confusable", seed=0)
    by_name = dict(zip(z["uids"], given))
    assert labels == [by_name[n] for n in faces.names] and (mask == faces.flipped).all()
    assert [label != t for label, t in zip(labels, faces.truth)] == mask.tolist(), "a flip is exactly a wrong given label"
    assert curation.baseline_accuracy(faces, "noisy_confusable") == pytest.approx(1 - mask.mean())
    with pytest.raises(SystemExit, match="trained on confusable noise"):
        curation.given_labels(faces, "noisy_uniform", seed=0)
    summary = curation.summarize([], faces, (0.1,))
    assert curation.section_name(summary) == "curation-honest" and summary["teacher"].startswith("honest")
    faces.noise = "uniform"
    assert curation.section_name(curation.summarize([], faces, (0.1,))) == "curation-honest-uniform", "each noise kind keeps its own section"
    plain = curation.load_faces(data, probs_file, 120, seed=0)
    assert plain.noise is None and curation.section_name(curation.summarize([], plain, (0.1,))) == "curation"
    assert set(EMOTIONS) >= set(labels)
