"""Active-learning rounds that retrain the teacher (issue 30): does re-training on what people fixed find more flips?

    python bench/rounds.py [--faces 5000] [--noise confusable] [--seeds 0,1] [--data ../shared/data/fer2013]

A sample of FER2013 train faces gets 20 % of its labels flipped (bench/_data.inject_noise); the default workflow's CPU
teacher (the teacher stage of workflows/fer2013.yaml, fit_teacher as `make run` calls it) learns from those labels.
Then the review budget (5, 10, 20, 30, 50, 70 % of the faces) is spent three ways, each time with an exact reviewer
who fixes every flip among the faces shown (label accuracy = (1 - noise) + flips fixed / faces, the identity
tests/test_curation_bench.py checks against a real Label Studio round trip):

- ``one_shot``: the shipped queue (`review push --routing likelihood` over `curate errors`' cleanlab flags) from the
  first teacher, read down to each budget: what one `make run` review round gives;
- ``rounds_rescore``: the same out-of-fold probabilities, but before every next slice cleanlab and routing run again on
  the labels as people left them (reviewed faces carry their true label): re-ranking without re-training;
- ``rounds_retrain``: before every next slice the teacher is **trained again** from scratch on the corrected labels
  (same recipe, same folds), and its fresh out-of-fold probabilities route the faces nobody reviewed yet;
- ``random``: a seeded shuffle, for scale.

Every teacher lands in ``bench/runs/rounds/<noise>-<faces>-s<seed>/round-<k>-<labels>`` (``<labels>``: a digest of the
labels it learned from, so other budgets never reuse it); a killed run resumes from the teachers already trained.
Results: ``bench/results/rounds-<noise>.json`` and the ``rounds-<noise>`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._data import NOISE_KINDS, inject_noise, review_candidates, rows_of  # noqa: E402
from bench._results import budget_table_header  # noqa: E402

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parents[1] / "shared/data/fer2013"
BUDGETS = (0.05, 0.10, 0.20, 0.30, 0.50, 0.70)
THRESHOLD = 0.9


@dataclasses.dataclass
class Teacher:
    """One trained teacher's view of the sample: out-of-fold probabilities (sample order) and its temperature."""

    probs: np.ndarray
    temperature: float
    oof_accuracy: float  # against the true labels: how much the teacher learned of the expressions


def queue(given: np.ndarray, probs: np.ndarray, temperature: float, exclude: set[int]) -> np.ndarray:
    """The shipped review order over the faces not in ``exclude``: routed faces first (`review push --routing
    likelihood`), then the rest by how unlikely the teacher finds their label (what a bigger budget would reach)."""
    from curate.review.routing import route

    n = len(given)
    cands, _ = review_candidates(given, probs, temperature)
    routed = [int(r.uid) for r in route(cands, THRESHOLD, exclude={str(i) for i in exclude})]
    seen = set(routed) | exclude
    rest = np.array([i for i in range(n) if i not in seen], int)
    tail = 1 - probs[rest, given[rest]] if len(rest) else np.zeros(0)
    return np.r_[np.array(routed, int), rest[np.argsort(-tail, kind="stable")]]


def spend(order: np.ndarray, reviewed: list[int], upto: int) -> list[int]:
    """``reviewed`` extended with the first faces of ``order`` not reviewed yet, up to ``upto`` faces in all."""
    have = set(reviewed)
    out = list(reviewed)
    for i in order:
        if len(out) >= upto:
            break
        if int(i) not in have:
            out.append(int(i))
            have.add(int(i))
    return out


def accuracy(truth: np.ndarray, given: np.ndarray, reviewed: list[int]) -> float:
    """Label accuracy after an exact reviewer fixed the faces in ``reviewed``."""
    labels = given.copy()
    labels[reviewed] = truth[reviewed]
    return float((labels == truth).mean())


def run_rounds(truth: np.ndarray, given: np.ndarray, first: Teacher, budgets: tuple[float, ...],
               retrain: Callable[[int, np.ndarray], Teacher] | None) -> tuple[list[float], list[Teacher]]:
    """Spend the budgets slice by slice; before each slice after the first, re-rank (``retrain`` None: the first
    teacher's probabilities, cleanlab re-run on the corrected labels) or train a fresh teacher on them (``retrain(k,
    labels)`` returns it). Returns the label accuracy at each budget and the teachers trained."""
    n = len(given)
    reviewed: list[int] = []
    teacher, trained, out = first, [], []
    for k, budget in enumerate(budgets):
        labels = given.copy()
        labels[reviewed] = truth[reviewed]
        if k and retrain is not None:
            teacher = retrain(k, labels)
            trained.append(teacher)
        reviewed = spend(queue(labels, teacher.probs, teacher.temperature, set(reviewed)), reviewed, int(round(budget * n)))
        out.append(accuracy(truth, given, reviewed))
    return out, trained


def train_teacher(rows: list, labels: np.ndarray, truth: np.ndarray, folder: Path, say: Callable[[str], None]) -> Teacher:
    """The default workflow's teacher trained on ``rows`` relabelled with ``labels`` (resumes a killed run; reuses a
    finished one trained on the same labels)."""
    from bench.cpu_teacher import workflow_teacher
    from curate.models.config import TeacherPlan, TrainConfig
    from curate.models.data import default_workers
    from curate.models.manifest import split_rows
    from curate.models.teacher import TeacherOptions, fit_teacher
    from curate.taxonomy import EMOTIONS

    folder = folder.with_name(f"{folder.name}-{hashlib.sha256(np.ascontiguousarray(labels, np.int64).tobytes()).hexdigest()[:8]}")
    done = sorted(folder.glob("teacher-*/teacher.safetensors"))
    if done:
        checkpoint = done[-1]
        temperature = float(json.loads(checkpoint.with_suffix(".json").read_text())["temperature"])
    else:
        params = workflow_teacher()
        folds = int(params.pop("folds", TeacherPlan.folds))
        config = TrainConfig(**{**params, "device": "cpu", "workers": default_workers("cpu")})
        relabelled = [dataclasses.replace(r, label=EMOTIONS[int(g)]) for r, g in zip(rows, labels)]
        train, val, _ = split_rows(relabelled, 0)
        resume = next(iter(sorted(folder.glob("teacher-*"))), None) if folder.is_dir() else None
        opts = TeacherOptions(dataset="fer2013", config=config, folds=folds, out=folder, resume=resume)
        result = fit_teacher(opts, train, val, [], folder, say=say)
        checkpoint, temperature = Path(result["checkpoint"]), float(result["temperature"])
    z = np.load(checkpoint.with_suffix(".oof.npz"))
    index = {str(u): i for i, u in enumerate(z["uids"])}
    probs = np.asarray(z["probs"], np.float64)[[index[r.uid] for r in rows]]
    return Teacher(probs, temperature, float((probs.argmax(1) == truth).mean()))


def one_sample(data: Path, faces: int, noise: str, rate: float, budgets: tuple[float, ...], seed: int, runs: Path,
               say: Callable[[str], None]) -> dict:
    """Every strategy on one seeded sample with its own flips: label accuracy by budget, and each round's teacher."""
    from curate.taxonomy import EMOTIONS

    rows = rows_of(data, "train", faces, seed)
    noisy, flipped = inject_noise(rows, noise, rate, seed=seed)
    truth = np.array([EMOTIONS.index(r.label) for r in rows])
    given = np.array([EMOTIONS.index(r.label) for r in noisy])
    first = train_teacher(rows, given, truth, runs / "round-0", say)
    say(f"seed {seed}, round 0 teacher: out-of-fold accuracy {100 * first.oof_accuracy:.1f} % on the true labels")
    n = len(rows)
    one_shot_order = queue(given, first.probs, first.temperature, set())
    table = {
        "one_shot": [accuracy(truth, given, list(one_shot_order[:int(round(b * n))])) for b in budgets],
        "rounds_rescore": run_rounds(truth, given, first, budgets, None)[0],
        "random": [accuracy(truth, given, list(np.random.default_rng(seed).permutation(n)[:int(round(b * n))])) for b in budgets],
    }

    def retrain(k: int, labels: np.ndarray) -> Teacher:
        teacher = train_teacher(rows, labels, truth, runs / f"round-{k}", say)
        say(f"seed {seed}, round {k} teacher: out-of-fold accuracy {100 * teacher.oof_accuracy:.1f} % on the true labels")
        return teacher

    table["rounds_retrain"], trained = run_rounds(truth, given, first, budgets, retrain)
    return {"seed": seed, "flipped_share": float(flipped.mean()),
            "teacher_oof_accuracy_by_round": [first.oof_accuracy, *(t.oof_accuracy for t in trained)],
            "strategies": {name: {"accuracy_by_budget": {str(b): a for b, a in zip(budgets, accs)}} for name, accs in table.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--faces", type=int, default=5000)
    parser.add_argument("--noise", choices=NOISE_KINDS, default="confusable")
    parser.add_argument("--noise-rate", type=float, default=0.2)
    parser.add_argument("--budgets", default=",".join(str(b) for b in BUDGETS))
    parser.add_argument("--seeds", default="0,1", help="Each seed draws its own sample and flips; the table shows their mean.")
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        sys.exit(f"error: {args.data}: no train/<class> folders (pass --data)")
    budgets = tuple(float(b) for b in args.budgets.split(","))
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {message}", file=sys.stderr, flush=True)

    samples = [one_sample(args.data, args.faces, args.noise, args.noise_rate, budgets, seed,
                          BENCH / "runs" / "rounds" / f"{args.noise}-{args.faces}-s{seed}", say) for seed in map(int, args.seeds.split(","))]
    summary = {"faces": args.faces, "noise": args.noise, "budgets": list(budgets), "samples": samples,
               "mean": {name: {"accuracy_by_budget": {str(b): float(np.mean([x["strategies"][name]["accuracy_by_budget"][str(b)] for x in samples]))
                                                      for b in budgets}} for name in samples[0]["strategies"]},
               "minutes": round((time.perf_counter() - started) / 60, 1)}
    from bench._results import write_section

    write_section(f"rounds-{args.noise}", markdown(summary), summary)


def markdown(summary: dict) -> str:
    budgets = summary["budgets"]
    samples = summary["samples"]
    rounds = "; ".join(f"seed {x['seed']}: " + ", ".join(f"{100 * a:.1f}" for a in x["teacher_oof_accuracy_by_round"]) + " %" for x in samples)
    lines = [f"## Active-learning rounds that retrain the teacher (bench/rounds.py), {summary['noise']} noise\n",
             f"{len(samples)} samples of {summary['faces']} FER2013 train faces (one per seed), each with "
             f"{100 * samples[0]['flipped_share']:.0f} % of its labels flipped ({summary['noise']}); the default workflow's CPU teacher "
             f"learned from them. Cells: label accuracy % after an exact reviewer fixed what each strategy showed, at each cumulative "
             f"budget: the mean over the samples, then each sample's. The teachers' out-of-fold accuracy on the true labels, round by "
             f"round ({rounds}). {summary['minutes']} min (teachers already trained are reused).\n",
             *budget_table_header("strategy", budgets, "per seed at 30 %")]
    for name, row in summary["mean"].items():
        each = " / ".join(f"{100 * x['strategies'][name]['accuracy_by_budget']['0.3']:.1f}" for x in samples) if 0.3 in budgets else ""
        lines.append(f"| {name} | " + " | ".join(f"{100 * row['accuracy_by_budget'][str(b)]:.1f}" for b in budgets) + f" | {each} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
