"""Retrain throughput vs a bare training step on FER2013 (accuracy lives in bench/models.py).

    python bench/retrain.py [--data ../shared/data/fer2013] [--arch mobilenetv2_100] [--image-size 48] [--steps 30]

Throughput: curate's retrain loop (JPEG decode, FER augmentations, oversampling draw,
DataLoader, AdamW + cosine, label smoothing) vs the same model, batch, optimizer and
device stepping on tensors already in memory; interleaved, best of 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._data import rows_of  # noqa: E402
from bench._results import write_section  # noqa: E402


def bare_steps(arch: str, size: int, batch: int, steps: int, device: str) -> float:
    import torch

    from curate.models.factory import create_model, default_stem_stride
    from curate.models.infer import resolve_device
    from curate.models.train import TrainConfig, _optimizer

    dev = resolve_device(device)
    # The same network as the loop's (the recipe's stem), so the ratio measures the loop's overhead alone.
    model = create_model(arch, 8, stem_stride=default_stem_stride(arch, size)).to(dev).to(memory_format=torch.channels_last).train()
    opt = _optimizer(model, TrainConfig())
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,), device=dev)
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    from curate.models.config import RetrainConfig
    from curate.models.data import default_workers
    from curate.models.fit import fit
    from curate.models.manifest import split_rows
    from curate.taxonomy import EMOTIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--arch", default="mobilenetv2_100")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    workers = default_workers(args.device)
    train_all, val_all, _ = split_rows(rows_of(args.data, "train", None, 0), 0)
    ours, bare = [], []
    for _ in range(args.repeats):
        cfg = RetrainConfig(arch=args.arch, image_size=args.image_size, epochs=1, batch_size=args.batch_size, device=args.device,
                            workers=workers, max_steps_per_epoch=args.steps, balance="oversample")
        with tempfile.TemporaryDirectory() as tmp:
            r = fit(train_all[: args.batch_size * args.steps * 2], val_all[:64], EMOTIONS, cfg, Path(tmp), {})
        ours.append(r["train_images_per_s"])
        bare.append(bare_steps(args.arch, args.image_size, args.batch_size, args.steps, args.device))
    ratio = max(ours) / max(bare)
    lines = [
        "## Retrain throughput (bench/retrain.py)",
        "",
        f"{args.arch} at {args.image_size} px, batch {args.batch_size}, {args.steps} steps, {workers} DataLoader worker(s); best of {args.repeats} interleaved.",
        "",
        "| path | training images/s |",
        "|---|---|",
        f"| bare training step on preloaded tensors | {max(bare):.1f} |",
        f"| curate retrain loop (decode + augment + oversampling + DataLoader) | {max(ours):.1f} |",
        "",
        f"Ratio: **{ratio:.2f}** (goal >= 0.85).",
    ]
    write_section("retrain", "\n".join(lines), {"ours": ours, "bare": bare, "ratio": ratio})


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
