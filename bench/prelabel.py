"""Pre-labeling throughput: curate's inference path vs a bare timm forward on preloaded tensors.

    python bench/prelabel.py [--data ../shared/data/fer2013/test] [--images 1024] [--arch resnet50] [--image-size 64]

Same model, batch size, device and thread count for both. The baseline is the ceiling:
tensors already decoded, resized and in memory. curate's path (curate.models.infer.predict,
what `curate prelabel` runs) decodes JPEGs, crops, resizes and normalizes in DataLoader
workers while the model runs, and also returns embeddings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402
from curate.models.factory import create_model  # noqa: E402
from curate.models.infer import predict, resolve_device  # noqa: E402
from curate.models.manifest import Row  # noqa: E402
from curate.models.preprocess import Preprocess  # noqa: E402
from curate.taxonomy import EMOTIONS  # noqa: E402


@torch.inference_mode()
def bare_forward(model, x: torch.Tensor, batch: int, device: torch.device) -> float:  # noqa: ANN001
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    model(x[:batch])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        model(x[i : i + batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013/test")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: what curate prelabel uses)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(str(p) for p in args.data.rglob("*.jpg"))[: args.images]
    if not paths:
        sys.exit(f"error: {args.data}: no images")
    from curate.models.data import default_workers

    args.workers = default_workers(args.device) if args.workers is None else args.workers
    device = resolve_device(args.device)
    threads = torch.get_num_threads()
    model = create_model(args.arch, len(EMOTIONS))
    rows = [Row(str(i), p, None, "test") for i, p in enumerate(paths)]
    pp = Preprocess(args.image_size)
    predict(model, rows[: args.batch_size], EMOTIONS, pp, args.batch_size, args.device, 0)  # warm-up
    ours, bare = [], []
    for _ in range(args.repeats):  # interleaved, best of N: both see the same machine state
        t0 = time.perf_counter()
        predict(model, rows, EMOTIONS, pp, args.batch_size, args.device, args.workers)
        ours.append(len(rows) / (time.perf_counter() - t0))
        bare.append(bare_forward(model, torch.randn(len(rows), 3, args.image_size, args.image_size), args.batch_size, device))
    ratio = max(ours) / max(bare)
    lines = [
        "## Pre-labeling throughput (bench/prelabel.py)",
        "",
        f"{args.arch} at {args.image_size} px, batch {args.batch_size}, {len(rows)} FER2013 test JPEGs, device {device}, "
        f"{threads} torch threads, {args.workers} DataLoader worker(s); best of {args.repeats} interleaved runs.",
        "",
        "| path | images/s |",
        "|---|---|",
        f"| bare timm forward on preloaded tensors (ceiling) | {max(bare):.1f} |",
        f"| curate prelabel inference (decode + preprocess + forward + embeddings) | {max(ours):.1f} |",
        "",
        f"Ratio: **{ratio:.2f}** (goal >= 0.9 on CPU).",
    ]
    write_section("prelabel", "\n".join(lines), {"ours": ours, "bare": bare, "ratio": ratio, "args": vars(args) | {"data": str(args.data)}})


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
