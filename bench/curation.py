"""Curation efficiency (issue 13): label accuracy against the share of faces a person reviewed, through a real Label Studio.

    python bench/curation.py [--faces 2000] [--probs bench/results/teacher-oof-gpu.npz] [--data ../shared/data/fer2013]

Ground truth is FER2013's train labels. Scenarios:
- ``unlabeled``: labels hidden; where nobody reviewed, the teacher's label stands;
- ``noisy_uniform`` / ``noisy_confusable``: 20 % of labels flipped (to any other class / to the
  confusable partner: fear<->surprise, sad<->neutral, anger<->disgust, happy->neutral); where nobody
  reviewed, the given label stands.

Strategies (``curate review push --routing``): random, confidence, cleanlab (``label_issues``),
curate (as shipped: ``likelihood``), balanced (the same candidates dealt round-robin over classes), and curate_rounds:
the same total budget spent in rounds (5, 10, 20, ... % of the faces), with a pull, a re-fit of the
probabilities on what people decided and a fresh ``curate errors`` before every next push.

Everything a person's browser would do goes through the server: ``push`` creates the tasks, a
simulated reviewer answers them through the SDK in queue order (exact, wrong 5 % of the time, two
annotators each wrong 5 % on every face, or the same two with the same number of answers spent by ActiveLab:
``review push --second-opinions activelab``), ``pull`` brings the decisions into SQL, and label accuracy is read from the
ledger's current labels (FiftyOne's ``prelabel`` for unlabeled faces nobody reviewed).

The teacher is not trained here: its out-of-fold probabilities come from ``--probs`` (an .npz of
``uids`` = file names and ``probs`` in curate.taxonomy.EMOTIONS order; ``bench/models.py train
teacher`` writes one), calibrated with a temperature fitted on the faces outside the benchmark's
sample. Quality filters are off (every face counts): this measures routing, not the blur filter.

Two kinds of ``--probs`` (issue 30):
- a teacher trained on FER2013's original labels (the committed GPU OOF): the noisy scenarios flip labels
  the teacher never learned, so they are an upper bound;
- an honest teacher, trained on the flipped labels it is asked to check: ``python bench/cpu_teacher.py
  --noise confusable --name noisy-confusable`` writes ``results/teacher-oof-cpu-noisy-confusable.npz`` with
  the given labels and the flip mask; the matching scenario then uses exactly those labels (and fits the
  temperature on given labels, as a user must), and the other scenarios are refused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._data import CONFUSABLE, FER_CLASSES  # noqa: E402
from bench._results import budget_table_header  # noqa: E402
from curate.review.routing import DEFAULT_STRATEGY  # noqa: E402 - a pure module, no heavy imports

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parents[1] / "shared/data/fer2013"
DEFAULT_PROBS = BENCH / "results/teacher-oof-gpu.npz"  # the GPU teacher's OOF (59.0 %), committed so no re-training is needed
SCENARIOS = ("unlabeled", "noisy_uniform", "noisy_confusable")
STRATEGIES = ("random", "confidence", "cleanlab", "curate", "balanced", "curate_rounds")
# curate = `review push` as shipped (its default routing); balanced = the class-dealt order (the default until session 7).
ROUTING = {"random": "random", "confidence": "confidence", "cleanlab": "label_issues", "curate": DEFAULT_STRATEGY, "balanced": "balanced",
           "curate_rounds": DEFAULT_STRATEGY}
BUDGETS = (0.05, 0.10, 0.20, 0.30, 0.50, 0.70)
NOISE = 0.20
THRESHOLD = 0.9


@dataclass
class Faces:
    """The benchmark's sample: file names, paths, true labels and the teacher's calibrated probabilities."""

    names: list[str]
    paths: list[Path]
    truth: list[str]
    probs: np.ndarray  # (n, 8), EMOTIONS order
    temperature: float
    noise: str | None = None  # honest probabilities: the noise kind their teacher was trained on ("confusable", "uniform")
    given: list[str] | None = None  # ... and the labels it was trained on, with which of them were flipped
    flipped: np.ndarray | None = None


@dataclass
class Reviewer:
    """A simulated person (or two) answering through the Label Studio API."""

    name: str = "exact"
    error_rate: float = 0.0
    annotators: int = 1
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def answer(self, truth: str) -> str:
        if self.error_rate and self.rng.random() < self.error_rate:
            return str(self.rng.choice([c for c in FER_CLASSES if c != truth]))
        return truth


REVIEWERS = {"exact": Reviewer("exact"), "wrong5": Reviewer("wrong5", 0.05), "two_annotators": Reviewer("two_annotators", 0.05, 2),
             # the same two people and the same number of answers as two_annotators at each budget, spent by
             # `review push --second-opinions activelab`: one answer per new face, a second one where ActiveLab says
             "two_activelab": Reviewer("two_activelab", 0.05, 2)}


# ----------------------------------------------------------------------------- data
def load_faces(data: Path, probs_file: Path, n: int, seed: int) -> Faces:
    """A random sample of ``n`` train faces that have out-of-fold probabilities, with calibrated probabilities."""
    from curate.models.calibrate import fit_temperature, softmax
    from curate.taxonomy import EMOTIONS, canonical

    if not probs_file.is_file():
        raise SystemExit(f"error: {probs_file}: no teacher probabilities; run `python bench/models.py train teacher` or pass --probs")
    z = np.load(probs_file)
    uids, probs = [str(u) for u in z["uids"]], np.asarray(z["probs"], np.float64)
    if probs.shape[1] != len(EMOTIONS):
        raise SystemExit(f"error: {probs_file}: probs have {probs.shape[1]} columns, expected {len(EMOTIONS)} (curate.taxonomy.EMOTIONS)")
    where = {p.name: p for p in (data / "train").rglob("*.jpg")}
    known = [i for i, u in enumerate(uids) if u in where]
    if len(known) < n:
        raise SystemExit(f"error: {probs_file}: only {len(known)} of its faces are under {data / 'train'}; need --faces {n}")
    truth_all = np.array([EMOTIONS.index(canonical(where[uids[i]].parent.name)) for i in known])
    honest = "given" in z.files
    given_all = np.array([EMOTIONS.index(str(g)) for g in z["given"][known]]) if honest else truth_all
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(known), n, replace=False))
    rest = np.setdiff1d(np.arange(len(known)), pick)
    logp = np.log(np.clip(probs[known], 1e-8, 1.0))
    # calibrate on faces outside the sample (the teacher's other labeled faces, as `curate teacher train` does on held-out
    # data); an honest teacher's labels are the noisy ones, so those are what its temperature is fitted on
    temperature = fit_temperature(logp[rest], given_all[rest]) if len(rest) >= 100 else 1.0
    calibrated = softmax(logp[pick], temperature)
    names = [uids[known[i]] for i in pick]
    faces = Faces(names, [where[u] for u in names], [EMOTIONS[truth_all[i]] for i in pick], calibrated, float(temperature))
    if honest:
        faces.noise = str(z["noise"])
        faces.given = [EMOTIONS[given_all[i]] for i in pick]
        faces.flipped = np.asarray(z["flipped"], bool)[known][pick]
    return faces


def given_labels(faces: Faces, scenario: str, seed: int) -> tuple[list[str | None], np.ndarray]:
    """(the labels a user would have, which faces were flipped)."""
    n = len(faces.names)
    flipped = np.zeros(n, bool)
    if faces.noise is not None:  # honest probabilities: only the labels their teacher learned from
        if scenario != f"noisy_{faces.noise}":
            sys.exit(f"error: these probabilities come from a teacher trained on {faces.noise} noise; run --scenarios noisy_{faces.noise}")
        return list(faces.given), faces.flipped.copy()
    if scenario == "unlabeled":
        return [None] * n, flipped
    rng = np.random.default_rng(seed + 1)
    flipped[rng.choice(n, int(round(NOISE * n)), replace=False)] = True
    labels: list[str | None] = []
    for truth, flip in zip(faces.truth, flipped):
        if not flip:
            labels.append(truth)
        elif scenario == "noisy_confusable":
            labels.append(CONFUSABLE[truth])
        else:
            labels.append(str(rng.choice([c for c in FER_CLASSES if c != truth])))
    return labels, flipped


def write_tree(faces: Faces, labels: list[str | None], root: Path) -> None:
    """Copies under root/train/<given label>/ (root/train/faces/ when unlabeled): what `curate ingest` reads."""
    for path, label in zip(faces.paths, labels):
        folder = root / "train" / (label or "faces")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, folder / path.name)


# ----------------------------------------------------------------------------- one run
@dataclass
class Run:
    scenario: str
    strategy: str
    reviewer: str
    dataset: str
    reviewed: list[int] = field(default_factory=list)  # faces answered at each budget point
    accuracy: list[float] = field(default_factory=list)
    flips_found: list[int] = field(default_factory=list)
    human_changes: list[int] = field(default_factory=list)
    queued: int = 0
    seconds: float = 0.0


def _store_predictions(url: str, dataset: str, uid_by_name: dict[str, str], faces: Faces, probs: np.ndarray, tag: str,
                       labels_from: np.ndarray | None = None) -> None:
    """The teacher's (or a re-fit's) probabilities as `curate teacher train` + `curate prelabel` would leave them.

    ``labels_from``: the probabilities whose argmax is the pre-label (default ``probs``); the stored
    confidence is ``probs``' probability of that label."""
    from curate.prelabel import records
    from curate.taxonomy import EMOTIONS

    uids = [uid_by_name[n] for n in faces.names]
    digest = (tag.encode().hex() * 64)[:64]
    run_id, _ = records.prelabel_run(url, dataset, "bench-teacher", digest, {"source": tag})
    records.store_oof(dataset, uids, probs, np.zeros(len(uids), int))
    chosen = (probs if labels_from is None else labels_from).argmax(1)
    labels = [EMOTIONS[i] for i in chosen]
    records.store_prelabels(url, dataset, run_id, digest, uids, labels, probs[np.arange(len(chosen)), chosen],
                            np.log(np.clip(probs, 1e-8, 1)), None)
    records.finish_prelabel_run(url, run_id, {"samples": len(uids)})


def _final_labels(url: str, dataset: str) -> tuple[dict[str, str | None], dict[str, str]]:
    """(uid -> final label: the ledger's current label, else the model's; uid -> source of the current label)."""
    from curate.review.records import sample_ids
    from curate.store import fo_store
    from curate.store.sql import ledger, session

    with session.session_scope(url) as db:
        found = ledger.require_dataset(db, dataset)
        uid_of = {sid: uid for uid, sid in sample_ids(db, found.id).items()}
        current = {uid_of[sid]: (label, source) for sid, (label, source) in ledger.current_labels(db, found.id).items() if sid in uid_of}
    ds = fo_store.load_dataset(dataset, create=False)
    model = dict(zip(*ds.values(["sample_uid", "prelabel.label"])))
    final = {u: current[u][0] if u in current else model.get(u) for u in uid_of.values()}
    return final, {u: src for u, (_, src) in current.items()}


def _refit(faces: Faces, reviewed: dict[int, str]) -> np.ndarray | None:
    """Probabilities re-fitted on what people decided: a multinomial logistic regression on the teacher's
    log-probabilities, trained on the reviewed faces (cross-fitted for those), so a teacher's systematic
    confusions (e.g. too much 'happy') are corrected before the next round is routed. None: too few answers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from curate.taxonomy import EMOTIONS

    idx = np.array(sorted(reviewed))
    if len(idx) < 50:
        return None
    y = np.array([EMOTIONS.index(reviewed[i]) for i in idx])
    present, counts = np.unique(y, return_counts=True)
    if len(present) < 2:
        return None
    x = np.log(np.clip(faces.probs, 1e-8, 1))

    def fit_predict(train: np.ndarray, labels: np.ndarray, target: np.ndarray) -> np.ndarray:
        model = LogisticRegression(C=1.0, max_iter=500).fit(x[train], labels)
        out = np.full((len(target), len(EMOTIONS)), 1e-6)
        out[:, model.classes_] = model.predict_proba(x[target])
        return out / out.sum(1, keepdims=True)

    probs = faces.probs.copy()
    others = np.setdiff1d(np.arange(len(faces.names)), idx)
    probs[others] = fit_predict(idx, y, others)
    folds = min(5, int(counts.min())) if counts.min() >= 2 else 0
    if folds >= 2:  # reviewed faces get out-of-fold re-fitted probabilities, as the teacher's are
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(idx, y):
            probs[idx[test]] = fit_predict(idx[train], y[train], idx[test])
    return probs


def _answer(ls, tasks: list, start: int, stop: int, truth_of: dict[str, str], reviewer: Reviewer,  # noqa: ANN001, PLR0913
            second_user: int | None) -> None:
    from curate.review.project import choice_result

    for task in tasks[start:stop]:
        truth = truth_of[task.data["sample_id"]]
        ls.annotations.create(id=task.id, result=choice_result(reviewer.answer(truth)))
        if reviewer.annotators > 1 and second_user is not None:
            ls.annotations.create(id=task.id, result=choice_result(reviewer.answer(truth)), completed_by=second_user)


def run_one(settings, ls, faces: Faces, scenario: str, strategy: str, reviewer: Reviewer, root: Path, budgets: tuple[float, ...],  # noqa: ANN001, PLR0913, PLR0915
            stamp: str, second_user: int | None) -> Run:
    from curate.errors.stage import analyze_errors
    from curate.ingest.stage import IngestOptions, ingest
    from curate.review.pull import pull
    from curate.review.push import push
    from curate.store import fo_store

    t0 = time.perf_counter()
    url = settings.database_url
    dataset = f"bench_cur_{stamp}_{scenario}_{strategy}_{reviewer.name}"
    labels, flipped = given_labels(faces, scenario, seed=0)
    tree = root / dataset
    write_tree(faces, labels, tree)
    ingest(IngestOptions(kind="folder", root=tree, dataset=dataset, workers=1, blur_max=1.0, occlusion_max=1.0), url, settings.home)
    ds = fo_store.load_dataset(dataset, create=False)
    uid_by_name = {Path(p).name: u for u, p in zip(*ds.values(["sample_uid", "filepath"]))}
    name_by_uid = {u: n for n, u in uid_by_name.items()}
    truth_of = {uid_by_name[n]: t for n, t in zip(faces.names, faces.truth)}
    given_of = {uid_by_name[n]: g for n, g in zip(faces.names, labels)}
    flipped_uids = {uid_by_name[n] for n, f in zip(faces.names, flipped) if f}
    _store_predictions(url, dataset, uid_by_name, faces, faces.probs, "teacher")
    analyze_errors(dataset, url, visualize=False)
    n = len(faces.names)
    run = Run(scenario, strategy, reviewer.name, dataset)
    routing = ROUTING[strategy]
    settings_ds = _with_dataset(settings, dataset)
    rounds = strategy == "curate_rounds"
    adaptive = reviewer.name == "two_activelab"
    if adaptive:
        return _run_activelab(settings_ds, ls, faces, run, reviewer, budgets, routing, truth_of, given_of, flipped_uids, second_user, t0)
    if not rounds:
        first = push(settings_ds, dataset, THRESHOLD, int(round(max(budgets) * n)), annotators=reviewer.annotators if reviewer.annotators > 1 else None,
                     routing=routing)
        run.queued = first["queued"]
        project = first["project"]
    answered = 0
    tasks: list = []
    index_of = {n_: i for i, n_ in enumerate(faces.names)}
    for budget in budgets:
        target = int(round(budget * n))
        if rounds:
            pushed = push(settings_ds, dataset, THRESHOLD, max(1, target - answered),
                          annotators=reviewer.annotators if reviewer.annotators > 1 else None, routing=routing)
            run.queued = max(run.queued, pushed["queued"] + answered)
            project = pushed["project"]
        if rounds or not tasks:
            tasks = sorted(ls.tasks.list(project=project), key=lambda t: t.id)
        stop = min(target, len(tasks))
        _answer(ls, tasks, answered, stop, truth_of, reviewer, second_user)
        answered = max(answered, stop)
        pull(settings_ds, dataset)
        final, source = _final_labels(url, dataset)
        humans = {u for u, s in source.items() if s == "human"}
        run.reviewed.append(answered)
        run.accuracy.append(float(np.mean([final.get(u) == t for u, t in truth_of.items()])))
        run.flips_found.append(len(humans & flipped_uids) if scenario != "unlabeled" else
                               sum(1 for u in humans if _teacher_label(faces, index_of[name_by_uid[u]]) != truth_of[u]))
        before = given_of if scenario != "unlabeled" else {u: _teacher_label(faces, index_of[name_by_uid[u]]) for u in humans}
        run.human_changes.append(sum(1 for u in humans if final[u] != before[u]))
        if rounds and budget != budgets[-1]:
            reviewed = {index_of[name_by_uid[u]]: final[u] for u in humans}
            refit = _refit(faces, reviewed)
            if refit is not None:
                # The re-fit re-orders who is reviewed next but does not relabel the unreviewed faces: fitted on the
                # faces routed so far (the hard ones), its labels were worse than the teacher's on the rest (unlabeled
                # scenario, 1000 faces: 62.0 % -> 40.4 % label accuracy after the 10 % round, session 7).
                _store_predictions(url, dataset, uid_by_name, faces, refit, f"refit{len(reviewed)}", labels_from=faces.probs)
            analyze_errors(dataset, url, visualize=False)
    run.seconds = time.perf_counter() - t0
    return run


def _run_activelab(settings, ls, faces: Faces, run: Run, reviewer: Reviewer, budgets: tuple[float, ...], routing: str,  # noqa: ANN001, PLR0913
                   truth_of: dict[str, str], given_of: dict[str, str | None], flipped_uids: set[str], second_user: int | None,
                   t0: float) -> Run:
    """Two people, answers spent by ActiveLab: at each budget b, as many answers in all as two_annotators gives
    (2 x b x faces); each push asks for the rest, new faces go to the first person and reopened ones to the second.
    The reviewed share recorded is answers / 2 per face, so the columns compare equal human effort."""
    from curate.review.project import choice_result
    from curate.review.pull import pull
    from curate.review.push import push

    if second_user is None:
        raise SystemExit("error: two_activelab needs the second reviewer account")
    url, dataset, n = settings.database_url, run.dataset, len(faces.names)
    spent, answered_tasks = 0, set()
    for budget in budgets:
        target = int(round(budget * n)) * reviewer.annotators
        if target > spent:
            pushed = push(settings, dataset, THRESHOLD, target - spent, annotators=reviewer.annotators, routing=routing,
                          second_opinions="activelab")
            run.queued = max(run.queued, pushed["queued"])
            reopened = set(pushed["reopened_tasks"])
            for task in sorted(ls.tasks.list(project=pushed["project"]), key=lambda t: t.id):
                if task.id in reopened:
                    ls.annotations.create(id=task.id, result=choice_result(reviewer.answer(truth_of[task.data["sample_id"]])),
                                          completed_by=second_user)
                elif task.id not in answered_tasks:
                    ls.annotations.create(id=task.id, result=choice_result(reviewer.answer(truth_of[task.data["sample_id"]])))
                    answered_tasks.add(task.id)
            spent += pushed["pushed"] + len(reopened)
            pull(settings, dataset)
        final, source = _final_labels(url, dataset)
        humans = {u for u, s in source.items() if s == "human"}
        run.reviewed.append(spent / reviewer.annotators)
        run.accuracy.append(float(np.mean([final.get(u) == t for u, t in truth_of.items()])))
        run.flips_found.append(len(humans & flipped_uids))
        run.human_changes.append(sum(1 for u in humans if final[u] != given_of[u]))
    run.seconds = time.perf_counter() - t0
    return run


def _teacher_label(faces: Faces, i: int) -> str:
    from curate.taxonomy import EMOTIONS

    return EMOTIONS[int(faces.probs[i].argmax())]


def _with_dataset(settings, dataset: str):  # noqa: ANN001, ANN202
    import dataclasses

    return dataclasses.replace(settings, dataset=dataset)


# ----------------------------------------------------------------------------- summary
def baseline_accuracy(faces: Faces, scenario: str) -> float:
    """Label accuracy with nobody reviewing: the teacher's (unlabeled) or the given labels' (noisy)."""
    if scenario == "unlabeled":
        return float(np.mean([_teacher_label(faces, i) == t for i, t in enumerate(faces.truth)]))
    return 1.0 - float(faces.flipped.mean()) if faces.flipped is not None else 1.0 - NOISE


def summarize(runs: list[Run], faces: Faces, budgets: tuple[float, ...]) -> dict[str, Any]:
    n = len(faces.names)
    out: dict[str, Any] = {"faces": n, "temperature": faces.temperature, "budgets": list(budgets), "threshold": THRESHOLD, "noise": NOISE,
                           "teacher_accuracy": baseline_accuracy(faces, "unlabeled"), "scenarios": {},
                           "teacher": f"honest: trained on the {faces.noise} flips" if faces.noise else "trained on the original labels (upper bound)",
                           "honest_noise": faces.noise}
    for run in runs:
        sc = out["scenarios"].setdefault(run.scenario, {"accuracy_without_review": baseline_accuracy(faces, run.scenario)})
        key = run.strategy if run.reviewer == "exact" else f"{run.strategy}/{run.reviewer}"
        reached = [r / n for r, a in zip(run.reviewed, run.accuracy) if a >= 0.98]
        sc[key] = {
            "accuracy_by_budget": {str(b): a for b, a in zip(budgets, run.accuracy)},
            "reviewed_share_by_budget": {str(b): r / n for b, r in zip(budgets, run.reviewed)},
            "flips_found_by_budget": {str(b): f for b, f in zip(budgets, run.flips_found)},
            "human_changes_by_budget": {str(b): c for b, c in zip(budgets, run.human_changes)},
            "min_reviewed_share_for_98": min(reached) if reached else None,
            "queued": run.queued, "through_label_studio": True, "reviewer": run.reviewer, "seconds": round(run.seconds, 1),
        }
    if "unlabeled" in out["scenarios"]:
        out["scenarios"]["unlabeled"]["cleanlab"] = {"accuracy_by_budget": None, "min_reviewed_share_for_98": None, "through_label_studio": False,
                                                     "not_applicable": "no given labels for cleanlab to check"}
    return out


def markdown(summary: dict[str, Any], minutes: float) -> str:
    budgets = summary["budgets"]
    n = summary["faces"]
    honest = summary.get("teacher", "").startswith("honest")
    kind = f" ({summary['honest_noise']} flips)" if summary.get("honest_noise") else ""
    lines = ["## Curation efficiency (bench/curation.py)" + (f", honest teacher{kind}" if honest else "") + "\n",
             f"{n} FER2013 train faces (random sample), teacher = out-of-fold probabilities from `{summary.get('probs', '?')}`, "
             f"{summary.get('teacher', 'trained on the original labels (upper bound)')} "
             f"(accuracy {100 * summary['teacher_accuracy']:.1f} % on this sample; temperature {summary['temperature']:.2f} fitted on the "
             f"other train faces), routing threshold {summary['threshold']}, {int(100 * summary['noise'])} % label noise in the noisy "
             f"scenarios. Every answer went through the embedded Label Studio (push, SDK annotations in queue order, pull); accuracy "
             f"read from the ledger. {minutes:.0f} min in all.\n"]
    for name, sc in summary["scenarios"].items():
        lines.append(f"### {name} (no review: {100 * sc['accuracy_without_review']:.1f} %)\n")
        lines.append("Cells: label accuracy % (faces whose wrong label was fixed / human label changes). Reviewed share is the "
                     "budget unless the strategy ran out of candidates (then in brackets).\n")
        lines.extend(budget_table_header("strategy", budgets, "smallest share reaching 98 %"))
        for key, row in sc.items():
            if not isinstance(row, dict) or row.get("accuracy_by_budget") is None:
                continue
            cells = []
            for b in budgets:
                a, r = row["accuracy_by_budget"][str(b)], row["reviewed_share_by_budget"][str(b)]
                short = f" [{100 * r:.0f} %]" if r + 1e-9 < b - 0.5 / n else ""
                cells.append(f"{100 * a:.1f} ({row['flips_found_by_budget'][str(b)]}/{row['human_changes_by_budget'][str(b)]}){short}")
            best = row["min_reviewed_share_for_98"]
            lines.append(f"| {key} | " + " | ".join(cells) + f" | {'%.0f %%' % (100 * best) if best is not None else 'not reached'} |")
        lines.append("")
    lines.append(f"![label accuracy against reviewed share](results/{section_name(summary)}.png)\n")
    return "\n".join(lines)


def section_name(summary: dict[str, Any]) -> str:
    """An honest teacher's runs get their own section, beside the upper bound's: one per noise kind, since each kind has its
    own teacher (the confusable one came first and keeps the plain name)."""
    noise = summary.get("honest_noise")
    if noise is None:
        return "curation"
    return "curation-honest" if noise == "confusable" else f"curation-honest-{noise}"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(summary["scenarios"])
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
    for ax, name in zip(axes[0], scenarios):
        sc = summary["scenarios"][name]
        for key, row in sc.items():
            if not isinstance(row, dict) or row.get("accuracy_by_budget") is None:
                continue
            xs = [0.0] + [row["reviewed_share_by_budget"][str(b)] for b in summary["budgets"]]
            ys = [sc["accuracy_without_review"]] + [row["accuracy_by_budget"][str(b)] for b in summary["budgets"]]
            strategy, _, reviewer = key.partition("/")  # one colour per strategy in every panel, one line style per reviewer
            ax.plot(xs, ys, marker="o", ms=3, label=key, color=f"C{STRATEGIES.index(strategy)}" if strategy in STRATEGIES else None,
                    linestyle={"": "-", "wrong5": "--", "two_annotators": "-.", "two_activelab": ":"}.get(reviewer, "-"))
        ax.axhline(0.98, color="grey", lw=0.8, ls=":")
        ax.set_title(name)
        ax.set_xlabel("share of faces reviewed")
        ax.set_ylabel("label accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(min(0.3, ax.get_ylim()[0]), 1.0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- driver
def run_benchmark(server_url: str, token: str, files_root: Path, faces: Faces, scenarios: tuple[str, ...],  # noqa: PLR0913
                  strategies: tuple[str, ...], budgets: tuple[float, ...], reviewers: dict[str, tuple[str, ...]],
                  progress=None) -> dict[str, Any]:  # noqa: ANN001
    """Every (scenario, strategy, reviewer) on its own dataset and Label Studio project.

    The embedded server of CURATE_HOME must be running at ``server_url``, serving ``files_root``."""
    from label_studio_sdk import LabelStudio

    from curate.settings import load_settings

    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))  # one line per run as it finishes
    settings = load_settings()
    ls = LabelStudio(base_url=server_url, api_key=token)
    second = None
    if any(REVIEWERS[r].annotators > 1 for names in reviewers.values() for r in names):
        stamp_user = f"reviewer2-{os.getpid()}@curate.bench"
        second = ls.users.create(email=stamp_user, username=stamp_user.split("@")[0]).id
    stamp = f"{os.getpid()}"
    runs = []
    for scenario in scenarios:
        for strategy in strategies:
            if strategy == "cleanlab" and scenario == "unlabeled":
                continue  # no given labels to check
            for name in reviewers.get(f"{scenario}/{strategy}", ("exact",)):
                reviewer = Reviewer(REVIEWERS[name].name, REVIEWERS[name].error_rate, REVIEWERS[name].annotators)
                run = run_one(settings, ls, faces, scenario, strategy, reviewer, files_root, budgets, stamp, second)
                progress(f"{scenario:17s} {strategy:14s} {name:15s} " + " ".join(f"{100 * a:5.1f}" for a in run.accuracy) + f"  ({run.seconds:.0f} s)")
                runs.append(run)
    return summarize(runs, faces, budgets)


def merged(summary: dict[str, Any], minutes: float, previous: Path) -> tuple[dict[str, Any], float]:
    """This invocation's runs laid over an earlier full run's (refused when faces, teacher or budgets differ)."""
    import json

    if not previous.exists():
        return summary, minutes
    old = json.loads(previous.read_text())
    same = ("faces", "budgets", "teacher_accuracy", "temperature")
    if any(old.get(k) != summary.get(k) for k in same):
        sys.exit(f"error: {previous}: measured on other faces, teacher or budgets; run the whole grid instead of --merge")
    for scenario, rows in summary["scenarios"].items():
        old["scenarios"].setdefault(scenario, {}).update(rows)
    old["probs"] = summary["probs"]
    return old, float(old.get("minutes", 0.0)) + minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--probs", type=Path, default=DEFAULT_PROBS)
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--budgets", default=",".join(str(b) for b in BUDGETS))
    parser.add_argument("--reviewer-variants", default="noisy_confusable/curate", help="scenario/strategy runs that also get the "
                        "wrong-5 %%, two-annotator and ActiveLab two-annotator reviewers ('' for none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--merge", action="store_true", help="keep the runs of results/curation.json that this invocation does not "
                        "re-measure (same faces, teacher and budgets), replacing those it does")
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        sys.exit(f"error: {args.data}: no train/<class> folders (pass --data)")
    started = time.perf_counter()
    faces = load_faces(args.data, args.probs, args.faces, args.seed)
    if faces.noise is not None and args.scenarios == ",".join(SCENARIOS):  # the default grid: only what the teacher learned from
        args.scenarios = f"noisy_{faces.noise}"
        args.reviewer_variants = args.reviewer_variants.replace("noisy_confusable/", f"noisy_{faces.noise}/")
    work = Path(tempfile.mkdtemp(prefix="curate-bench-curation-"))
    home = work / "home"
    os.environ["CURATE_HOME"] = str(home)
    os.environ["CURATE_DB_URL"] = f"sqlite:///{home / 'curate.db'}"
    files_root = work / "files"
    files_root.mkdir(parents=True)
    reviewers = {key: ("exact", "wrong5", "two_annotators", "two_activelab") for key in filter(None, args.reviewer_variants.split(","))}
    from curate.ports import free_port
    from curate.review import server

    info = server.serve(home, free_port(), files_root, timeout=300)
    try:
        token = server.credentials(server.paths(home)).token.reveal()
        summary = run_benchmark(info["url"], token, files_root, faces, tuple(args.scenarios.split(",")), tuple(args.strategies.split(",")),
                                tuple(float(b) for b in args.budgets.split(",")), reviewers)
    finally:
        server.stop(home)
        from curate.store import fo_store

        fo = fo_store.fo()
        for name in fo.list_datasets(f"bench_cur_{os.getpid()}_*"):  # FiftyOne's database outlives the temp folder
            fo.delete_dataset(name)
        from curate.store import database

        database.release(database.database_folder(home))  # stop its mongod before its folder goes
    minutes = (time.perf_counter() - started) / 60
    summary["probs"] = os.path.relpath(args.probs, BENCH.parent)
    if args.merge:
        summary, minutes = merged(summary, minutes, BENCH / "results" / f"{section_name(summary)}.json")
    summary["minutes"] = round(minutes, 1)
    from bench._results import write_section

    plot(summary, BENCH / "results" / f"{section_name(summary)}.png")
    write_section(section_name(summary), markdown(summary, minutes), summary)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
