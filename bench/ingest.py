"""Ingest throughput against its binding floor, local vs Ray, and peak memory at two dataset sizes.

    python bench/ingest.py [--data ../shared/data/fer2013] [--small 5000] [--workers N] [--engines local ray]

``--workers`` defaults to what ``curate ingest`` uses (every core but one); the engines are compared at 1 and 2 too.

Two floors over the same files, neither of which ingest can beat:
- decode-only: the files decoded (PIL, to grayscale) by the same number of worker processes, nothing else;
- FiftyOne bulk write: the samples the full ingest stored, copied and written again to a fresh dataset with
  the call ingest itself uses (``curate.store.fo_store.add_samples``, in the same batches), nothing else.
  FiftyOne's ``add_samples`` with its default arguments (per-sample validation) is timed beside it.
The binding floor is the slower of the two (max of their times); ``ratio`` = ingest images/s / floor images/s.
Ingest: the real ``curate ingest fer2013`` command (fresh ledger and FiftyOne database) on all inputs with each
engine and worker count, and on the first ``--small`` inputs (memory flatness). Peak RSS is sampled over the
curate process and its workers (mongod reported apart).
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


_FO_WRITE = """
import json, sys, time
from curate.store import fo_store
fo = fo_store.fo()
stored = fo_store.load_dataset("bench", create=False)
skip = {"_id", "id", "created_at", "last_modified_at", "_dataset_id", "_media_type", "_rand"}
docs = [{k: v for k, v in s.to_dict().items() if k not in skip} for s in stored.iter_samples()]
result = {"samples": len(docs)}
for name, write in (("curate_call", fo_store.add_samples), ("fiftyone_defaults", lambda ds, batch: ds.add_samples(batch, progress=False))):
    target = fo_store.load_dataset("floor-" + name)
    batches = [[fo.Sample.from_dict(d) for d in docs[i : i + 1000]] for i in range(0, len(docs), 1000)]  # built untimed
    t0 = time.perf_counter()
    for batch in batches:
        write(target, batch)
    result[name + "_images_per_s"] = len(docs) / (time.perf_counter() - t0)
    assert len(target) == len(docs)
print(json.dumps(result))
"""


def run_ingest(data: Path, limit: int | None, workers: int, engine: str = "local", fo_write_floor: bool = False) -> dict:
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
        summary = json.loads(out.strip().splitlines()[-1])
        if not summary.get("ok"):
            raise SystemExit(f"ingest failed: {summary}")
        floor = None
        if fo_write_floor:  # on the same database, while the ingested samples are there
            done = subprocess.run([sys.executable, "-c", _FO_WRITE], env=env, capture_output=True, text=True, check=True)
            floor = json.loads(done.stdout.strip().splitlines()[-1])
        subprocess.run(["pkill", "-f", f"{tmp}/fo"], check=False)  # the bench's own mongod
        return {"summary": summary, "wall_s": wall, "peak_rss_mb": sampler.peak / 2**20, "peak_mongod_mb": sampler.peak_mongod / 2**20,
                "images_per_s_stage": summary["seen"] / summary["seconds"], "images_per_s_wall": summary["seen"] / wall,
                "fo_write_floor": floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=None, help="the ratio's run (default: what curate ingest uses)")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], help="engines compared with 1, 2 and --workers workers")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: FER2013 not found (pass --data)")
    from curate.settings import load_settings

    default_workers = load_settings(environ={}).worker_count
    args.workers = args.workers or default_workers
    files = sorted(str(p) for p in args.data.rglob("*.jpg"))
    decode_floor = decode_baseline(files, args.workers)
    full = run_ingest(args.data, None, args.workers, fo_write_floor=True)
    small = run_ingest(args.data, args.small, args.workers)
    fo_floor = full["fo_write_floor"]["curate_call_images_per_s"]
    binding = min(decode_floor, fo_floor)  # the slower rate is the larger time
    ratio = full["images_per_s_stage"] / binding
    engines = [{"engine": "local", "workers": args.workers, "run": full}]
    for engine in args.engines:
        for workers in sorted({1, 2, args.workers}):
            if (engine, workers) != ("local", args.workers):
                print(f"ingest {engine} x{workers}", file=sys.stderr, flush=True)
                engines.append({"engine": engine, "workers": workers, "run": run_ingest(args.data, None, workers, engine)})
    s = full["summary"]
    found = {str({k: e["run"]["summary"][k] for k in ("rejected", "quality_removed", "duplicates")}) for e in engines}
    lines = [
        "## Ingest throughput, floors and memory (bench/ingest.py)",
        "",
        f"{len(files)} FER2013 JPEGs; the ratio's run uses {args.workers} scoring worker process(es)"
        f"{' (what curate ingest uses by default: every core but one)' if args.workers == default_workers else ''}, "
        f"as does the decode floor.",
        "",
        "| floor | images/s |",
        "|---|---|",
        f"| decode-only ({args.workers} processes) | {decode_floor:.0f} |",
        f"| FiftyOne bulk write of the same samples, as ingest calls it | {fo_floor:.0f} |",
        f"| (FiftyOne `add_samples` with default arguments, for reference) | {full['fo_write_floor']['fiftyone_defaults_images_per_s']:.0f} |",
        "",
        f"Binding floor: {binding:.0f} images/s. Ingest, all {s['seen']} faces: {full['images_per_s_stage']:.0f} images/s. "
        f"**Ratio {ratio:.2f}** (goal >= 0.5).",
        "",
        "| engine | workers | inputs | images/s (stage) | images/s (wall, incl. start-up) | peak RSS curate+workers | peak RSS mongod |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in engines:
        r = e["run"]
        lines.append(f"| {e['engine']} | {e['workers']} | {r['summary']['seen']} | {r['images_per_s_stage']:.0f} | {r['images_per_s_wall']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} MB | {r['peak_mongod_mb']:.0f} MB |")
    lines += [
        f"| local | {args.workers} | {small['summary']['seen']} | {small['images_per_s_stage']:.0f} | {small['images_per_s_wall']:.0f} | "
        f"{small['peak_rss_mb']:.0f} MB | {small['peak_mongod_mb']:.0f} MB |",
        "",
        f"Peak RSS {small['summary']['seen']} vs {s['seen']} inputs: {small['peak_rss_mb']:.0f} MB vs {full['peak_rss_mb']:.0f} MB (goal: flat). "
        f"Same rejections, removals and duplicates with every engine: **{'yes' if len(found) == 1 else 'NO'}**.",
        "",
        f"What the full ingest found: rejected {s['rejected'] or 'none'}; quality removed {s['quality_removed']}; duplicates {s['duplicates']}.",
    ]
    write_section("ingest", "\n".join(lines), {"ratio": ratio, "floors": {"decode_only_images_per_s": decode_floor,
                  "fiftyone_write_images_per_s": fo_floor, "binding_images_per_s": binding, "fiftyone_write": full["fo_write_floor"]},
                  "full": full, "small": small, "engines": [{"engine": e["engine"], "workers": e["workers"],
                  "images_per_s_stage": e["run"]["images_per_s_stage"], "images_per_s_wall": e["run"]["images_per_s_wall"],
                  "peak_rss_mb": e["run"]["peak_rss_mb"], "summary": e["run"]["summary"]} for e in engines],
                  "identical_findings": len(found) == 1})


if __name__ == "__main__":
    main()
