"""Ingest on the local engine vs Ray (issue 14): images/s with 1 and 2 workers on the same FER2013 faces.

    python bench/engines.py [--data ../shared/data/fer2013] [--limit 4000] [--workers 1 2]

Each run is the real ``curate ingest fer2013 --engine local|ray`` command on a fresh ledger and FiftyOne
database (bench/ingest.py's runner); Ray is the local one the command starts, so its start-up is in the
wall time and not in the stage's images/s. Both engines must find the same rejections and quality removals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402
from bench.ingest import run_ingest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: FER2013 not found (pass --data)")
    runs = []
    for workers in args.workers:
        for engine in ("local", "ray"):
            r = run_ingest(args.data, args.limit, workers, engine)
            s = r["summary"]
            runs.append({"engine": engine, "workers": workers, "images_per_s_stage": round(r["images_per_s_stage"], 1),
                         "images_per_s_wall": round(r["images_per_s_wall"], 1), "wall_s": round(r["wall_s"], 1),
                         "peak_rss_mb": round(r["peak_rss_mb"]), "found": {"rejected": s["rejected"], "quality_removed": s["quality_removed"]}})
            print(runs[-1], file=sys.stderr, flush=True)
    same = len({str(r["found"]) for r in runs}) == 1
    base = runs[0]["images_per_s_stage"]
    lines = ["## Ingest engines: local vs Ray (bench/engines.py)", "",
             f"`curate ingest fer2013 --limit {args.limit}` on FER2013, fresh stores per run; Ray is a local Ray the command starts.", "",
             "| engine | workers | images/s (stage) | vs local, 1 worker | images/s (wall, incl. start-up) | peak RSS (command + workers) |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['engine']} | {r['workers']} | {r['images_per_s_stage']} | {r['images_per_s_stage'] / base:.2f}x | "
                     f"{r['images_per_s_wall']} | {r['peak_rss_mb']} MB |")
    lines += ["", f"Same rejections and quality removals on every run: **{'yes' if same else 'NO'}**."]
    write_section("engines", "\n".join(lines), {"runs": runs, "limit": args.limit, "identical_findings": same})


if __name__ == "__main__":
    main()
