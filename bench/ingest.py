"""Ingest throughput vs a decode-only baseline, and peak memory at two dataset sizes.

    python bench/ingest.py [--data ../shared/data/fer2013] [--small 5000] [--workers N]

Baseline: the same files decoded (PIL, to grayscale) by the same number of worker
processes, nothing else. Ingest: the real ``curate ingest fer2013`` command (fresh
ledger and FiftyOne database) on the first ``--small`` inputs and on all of them.
Peak RSS is sampled over the curate process and its workers (mongod reported apart).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402


def _decode(paths: list[str]) -> int:
    from PIL import Image

    for p in paths:
        with Image.open(p) as im:
            im.convert("L").load()
    return len(paths)


def decode_baseline(files: list[str], workers: int) -> float:
    chunks = [files[i : i + 256] for i in range(0, len(files), 256)]
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(workers) as pool:
        done = sum(pool.map(_decode, chunks))
    return done / (time.perf_counter() - t0)


class _RssSampler(threading.Thread):
    """Peak RSS of a process tree (curate + its workers) and, separately, of mongod."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_mongod, self.stop = pid, 0, 0, threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                ours = sum(p.memory_info().rss for p in procs if "mongod" not in p.name())
                mongod = sum(p.memory_info().rss for p in psutil.process_iter(["name"]) if p.info["name"] == "mongod")
                self.peak, self.peak_mongod = max(self.peak, ours), max(self.peak_mongod, mongod)
            except psutil.Error:
                pass
            time.sleep(0.1)


def run_ingest(data: Path, limit: int | None, workers: int, engine: str = "local") -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        env = {**os.environ, "CURATE_HOME": f"{tmp}/home", "FIFTYONE_DATABASE_DIR": f"{tmp}/fo", "FIFTYONE_DO_NOT_TRACK": "true"}
        cmd = [str(Path(sys.executable).parent / "curate"), "ingest", "fer2013", str(data), "--dataset", "bench", "--workers", str(workers), "--json"]
        if limit:
            cmd[-1:-1] = ["--limit", str(limit)]
        cmd[-1:-1] = ["--engine", engine]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        sampler = _RssSampler(proc.pid)
        sampler.start()
        out, _ = proc.communicate()
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        subprocess.run(["pkill", "-f", f"{tmp}/fo"], check=False)  # the bench's own mongod
        summary = json.loads(out.strip().splitlines()[-1])
        if not summary.get("ok"):
            raise SystemExit(f"ingest failed: {summary}")
        return {"summary": summary, "wall_s": wall, "peak_rss_mb": sampler.peak / 2**20, "peak_mongod_mb": sampler.peak_mongod / 2**20,
                "images_per_s_stage": summary["seen"] / summary["seconds"], "images_per_s_wall": summary["seen"] / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: FER2013 not found (pass --data)")
    files = sorted(str(p) for p in args.data.rglob("*.jpg"))
    baseline = decode_baseline(files, args.workers)
    small = run_ingest(args.data, args.small, args.workers)
    full = run_ingest(args.data, None, args.workers)
    s = full["summary"]
    ratio = full["images_per_s_stage"] / baseline
    lines = [
        "## Ingest throughput and memory (bench/ingest.py)",
        "",
        f"{len(files)} FER2013 JPEGs, {args.workers} worker processes for both baseline and ingest.",
        "",
        "| run | inputs | images/s (stage) | images/s (wall, incl. start-up) | peak RSS curate+workers | peak RSS mongod |",
        "|---|---|---|---|---|---|",
        f"| decode-only baseline | {len(files)} | {baseline:.0f} | | | |",
        f"| curate ingest | {small['summary']['seen']} | {small['images_per_s_stage']:.0f} | {small['images_per_s_wall']:.0f} | {small['peak_rss_mb']:.0f} MB | {small['peak_mongod_mb']:.0f} MB |",
        f"| curate ingest | {s['seen']} | {full['images_per_s_stage']:.0f} | {full['images_per_s_wall']:.0f} | {full['peak_rss_mb']:.0f} MB | {full['peak_mongod_mb']:.0f} MB |",
        "",
        f"Ratio ingest / decode-only: **{ratio:.2f}** (goal >= 0.5). Peak RSS {args.small} vs {s['seen']} inputs: "
        f"{small['peak_rss_mb']:.0f} MB vs {full['peak_rss_mb']:.0f} MB (goal: flat).",
        "",
        f"What the full ingest found: rejected {s['rejected'] or 'none'}; quality removed {s['quality_removed']}; "
        f"duplicates {s['duplicates']}.",
    ]
    write_section("ingest", "\n".join(lines), {"baseline_images_per_s": baseline, "small": small, "full": full, "ratio": ratio})


if __name__ == "__main__":
    main()
