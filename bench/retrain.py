"""Retrain throughput vs a bare training step, and a short accuracy run on FER2013.

    python bench/retrain.py [--data ../shared/data/fer2013] [--arch mobilenetv2_100] [--image-size 48] [--steps 30]
    python bench/retrain.py --accuracy --epochs 2      # also train on the train split and score the test split

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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402
from bench._data import blur_copy, rows_of  # noqa: E402


def bare_steps(arch: str, size: int, batch: int, steps: int, device: str) -> float:
    import torch

    from curate.models.factory import create_model
    from curate.models.infer import resolve_device
    from curate.models.train import TrainConfig, _optimizer

    dev = resolve_device(device)
    model = create_model(arch, 8).to(dev).to(memory_format=torch.channels_last).train()
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
    from curate.models.data import default_workers
    from curate.models.retrain import RetrainConfig, retrain
    from curate.prelabel.teacher import split_rows
    from curate.taxonomy import EMOTIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--arch", default="mobilenetv2_100")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--balance", default="oversample")
    args = parser.parse_args()
    workers = default_workers(args.device)
    train_all, val_all, _ = split_rows(rows_of(args.data, "train", None, 0), 0)
    if args.accuracy:
        accuracy_run(args, train_all, val_all, workers)
        return
    ours, bare = [], []
    for _ in range(args.repeats):
        cfg = RetrainConfig(arch=args.arch, image_size=args.image_size, epochs=1, batch_size=args.batch_size, device=args.device,
                            workers=workers, max_steps_per_epoch=args.steps, balance="oversample")
        with tempfile.TemporaryDirectory() as tmp:
            r = retrain(train_all[: args.batch_size * args.steps * 2], val_all[:64], EMOTIONS, cfg, Path(tmp), {})
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


def accuracy_run(args, train_all: list, val_all: list, workers: int) -> None:  # noqa: ANN001
    """Train on the train split and score the (sharp and blurred) test split; its own RESULTS section."""
    from curate.models.retrain import RetrainConfig, retrain
    from curate.taxonomy import EMOTIONS

    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.metrics import classification_metrics
    from curate.models.preprocess import Preprocess

    data: dict = {}
    lines: list[str] = []
    cfg = RetrainConfig(arch=args.arch, image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                        workers=workers, balance=args.balance)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        retrain(train_all, val_all, EMOTIONS, cfg, Path(tmp), {})
        model, _ = load_checkpoint(Path(tmp) / "best.safetensors")
    minutes = (time.time() - t0) / 60
    test = rows_of(args.data, "test", None, 0)
    index = {c: i for i, c in enumerate(EMOTIONS)}
    rows_out = []
    for name, rows in (("test", test), ("test blurred sigma 3", blur_copy(test, Path("/tmp/curate-bench-blurred-test"), 3.0))):
        logits, _ = predict(model, rows, EMOTIONS, Preprocess(args.image_size), args.batch_size, args.device, workers)
        m = classification_metrics(np.array([index[x.label] for x in rows]), logits.argmax(1), EMOTIONS)
        rows_out.append(f"| {name} ({m['n']}) | {100 * m['accuracy']:.1f} % | {100 * m['balanced_accuracy']:.1f} % | {m['macro_f1']:.3f} |")
        data[name] = m
    params = sum(p.numel() for p in model.parameters())
    lines += [
        "## Retrain accuracy, short CPU configuration (bench/retrain.py --accuracy)",
        "",
        f"{args.arch} from scratch, {args.image_size} px, {args.epochs} epochs, balance {args.balance}, "
        f"{len(train_all)} train / {len(val_all)} val faces of the blurred train split; {minutes:.0f} min; {params / 1e6:.2f} M parameters",
        "",
        "| evaluated on | accuracy | balanced acc. | macro-F1 |",
        "|---|---|---|---|",
        *rows_out,
        "",
        "Reference: MobileNetV2 69.8 %, 73.1 % with ResNet-50 distillation (published: pretrained, sharp training data, "
        "many epochs). No GPU was lent to this task, so convergence runs were not possible here.",
    ]
    write_section("retrain-accuracy", "\n".join(lines), data)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
