"""Pre-labeling on the local engine vs Ray (issue 14): images/s with 1 and 2 inference actors on the same faces.

    python bench/engines.py [--data ../shared/data/fer2013] [--limit 2000] [--arch resnet50] [--ray-workers 1 2]

Set-up (untimed): a fresh ledger and FiftyOne database, ``curate ingest fer2013 --split train --limit N`` and a
teacher of ``--arch`` trained for one step per fold (what it predicts does not change what inference costs).
Then the real ``curate prelabel`` command, once per engine: local (this process, torch on every core) and Ray
with each actor count (a local Ray the command starts; each actor gets cores / actors threads). images/s is the
stage's own figure (inference and storage; Ray's start-up is in the wall time). Every run must store the same
labels. The ingest engines are compared in bench/ingest.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402

CURATE = str(Path(sys.executable).parent / "curate")


def _curate(env: dict[str, str], *args: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    done = subprocess.run([CURATE, *args, "--json"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"curate {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--ray-workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: FER2013 not found (pass --data)")
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        env = {**os.environ, "CURATE_HOME": f"{tmp}/home", "FIFTYONE_DATABASE_DIR": f"{tmp}/fo", "FIFTYONE_DO_NOT_TRACK": "true",
               "HF_HUB_OFFLINE": "1"}
        env.pop("FIFTYONE_DATABASE_URI", None)
        try:
            _curate(env, "ingest", "fer2013", str(args.data), "--split", "train", "--limit", str(args.limit), "--dataset", "bench")
            teacher, _ = _curate(env, "teacher", "train", "--dataset", "bench", "--arch", args.arch, "--epochs", "1", "--folds", "2",
                                 "--max-steps-per-epoch", "1", "--batch-size", "16", "--device", "cpu")
            runs = []
            for engine, actors in [("local", None), *(("ray", n) for n in args.ray_workers)]:
                extra = ["--engine", engine] + (["--ray-workers", str(actors)] if actors else [])
                summary, wall = _curate(env, "prelabel", "--dataset", "bench", "--checkpoint", teacher["checkpoint"], "--device", "cpu", *extra)
                runs.append({"engine": engine, "actors": actors, "samples": summary["samples"], "images_per_s": summary["images_per_s"],
                             "wall_s": round(wall, 1), "predicted": summary["predicted"]})
                print(runs[-1], file=sys.stderr, flush=True)
        finally:
            subprocess.run(["pkill", "-f", f"{tmp}/fo"], check=False)  # the bench's own mongod
    same = len({json.dumps(r["predicted"], sort_keys=True) for r in runs}) == 1
    base = runs[0]["images_per_s"]
    lines = ["## Pre-labeling engines: local vs Ray (bench/engines.py)", "",
             f"`curate prelabel` with a {args.arch} teacher at its default 48 px on {runs[0]['samples']} FER2013 train faces, "
             f"device cpu ({os.cpu_count()} cores); fresh stores; Ray is a local Ray the command starts.", "",
             "| engine | inference actors | images/s (stage) | vs local | wall s (incl. start-up) |", "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['engine']} | {r['actors'] or '-'} | {r['images_per_s']} | {r['images_per_s'] / base:.2f}x | {r['wall_s']} |")
    lines += ["", f"The same predicted labels on every run: **{'yes' if same else 'NO'}**."]
    write_section("engines", "\n".join(lines), {"runs": runs, "limit": args.limit, "arch": args.arch, "identical_predictions": same})


if __name__ == "__main__":
    main()
