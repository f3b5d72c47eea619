"""Data-parallel retrain (--nproc) against one process: training images/s and accuracy after the same epochs.

    python bench/ddp.py [--data ../shared/data/fer2013] [--faces 6000] [--epochs 2] [--nproc 1 2] [--device auto]

Each configuration trains the same MobileNetV2 (the recipe's stem) on the same FER2013 train faces for the
same epochs with the same per-process batch (so N processes take N-times larger global steps, as DDP users
do), then evaluates on FER2013 test faces. On CPU the ranks share the machine's cores (each gets
cores / N threads), so on a 2-core machine this measures DDP's overhead more than its gain; on a
multi-GPU machine each rank gets a GPU. The AffectNet plan in bench/RESULTS.md scales the measured
single-GPU rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._data import rows_of  # noqa: E402
from bench._results import write_section  # noqa: E402


def main() -> None:
    import numpy as np

    from curate.models.checkpoint import load_checkpoint
    from curate.models.config import RetrainConfig
    from curate.models.data import default_workers
    from curate.models.fit import fit
    from curate.models.infer import predict
    from curate.models.manifest import split_rows
    from curate.models.metrics import classification_metrics
    from curate.models.preprocess import Preprocess
    from curate.taxonomy import EMOTIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--faces", type=int, default=6000, help="train faces (0: all)")
    parser.add_argument("--test-faces", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--arch", default="mobilenetv2_100")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    train, val, _ = split_rows(rows_of(args.data, "train", args.faces or None, 0), 0)
    test = rows_of(args.data, "test", args.test_faces or None, 0)
    y = np.array([EMOTIONS.index(r.label) for r in test])
    runs = []
    for nproc in args.nproc:
        cfg = RetrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, device=args.device, nproc=nproc,
                            workers=default_workers(args.device))
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = fit(train, val, EMOTIONS, cfg, Path(tmp), {})
            wall = time.perf_counter() - started
            model, side = load_checkpoint(Path(tmp) / "best.safetensors")
            logits, _ = predict(model, test, EMOTIONS, Preprocess.from_dict(side["preprocess"]), 256, args.device)
        accuracy = classification_metrics(y, logits.argmax(1), EMOTIONS)["accuracy"]
        runs.append({"nproc": nproc, "train_images_per_s": round(result["train_images_per_s"], 1), "wall_seconds": round(wall, 1),
                     "test_accuracy": round(float(accuracy), 4), "best_epoch": result["best_epoch"]})
        print(runs[-1], file=sys.stderr, flush=True)
    base = runs[0]["train_images_per_s"]
    lines = ["## Data-parallel retrain (bench/ddp.py)", "",
             f"{args.arch} at 48 px, {len(train)} FER2013 train faces (oversampled), {args.epochs} epochs, batch {args.batch_size} per process; "
             f"accuracy on {len(test)} FER2013 test faces.", "",
             "| processes | training images/s | vs 1 process | wall s | test accuracy |", "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['nproc']} | {r['train_images_per_s']} | {r['train_images_per_s'] / base:.2f}x | {r['wall_seconds']} | "
                     f"{100 * r['test_accuracy']:.1f} % |")
    write_section("ddp", "\n".join(lines), {"runs": runs, "faces": len(train), "epochs": args.epochs, "arch": args.arch})


if __name__ == "__main__":
    main()
