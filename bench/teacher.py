"""Teacher accuracy on FER2013: train on the train split, report test accuracy, macro-F1, per-class recall, ECE.

    python bench/teacher.py [--data ../shared/data/fer2013] [--arch resnet50] [--image-size 48] [--epochs 2] [--train-limit N]

Runs from plain data (a manifest of the class folders) with torch/timm only, so the same
command runs on a GPU machine. The test split is also scored after blurring it with a
Gaussian of sigma 3 px, because the train split in ../shared is blurred by about that
much (see the data findings above): the gap between the two numbers is the domain shift.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402


def rows_of(root: Path, split: str, limit: int | None, seed: int, blurred_dir: Path | None = None) -> list:
    from curate.models.manifest import Row
    from curate.taxonomy import canonical

    rows = [Row(p.name, str(p), canonical(p.parent.name), split) for p in sorted((root / split).rglob("*.jpg"))]
    rng = np.random.default_rng(seed)
    rng.shuffle(rows)
    return rows[:limit] if limit else rows


def blur_copy(rows: list, out: Path, sigma: float) -> list:
    import cv2

    from curate.models.manifest import Row

    out.mkdir(parents=True, exist_ok=True)
    blurred = []
    for r in rows:
        target = out / f"{Path(r.path).parent.name}_{Path(r.path).name}"
        if not target.exists():
            cv2.imwrite(str(target), cv2.GaussianBlur(cv2.imread(r.path, cv2.IMREAD_GRAYSCALE), (0, 0), sigma))
        blurred.append(Row(r.uid, str(target), r.label, r.split))
    return blurred


def main() -> None:
    import torch

    from curate.models.calibrate import expected_calibration_error, fit_temperature, softmax
    from curate.models.infer import predict
    from curate.models.metrics import classification_metrics
    from curate.models.preprocess import Preprocess
    from curate.models.train import TrainConfig, train_model
    from curate.prelabel.teacher import split_rows
    from curate.taxonomy import EMOTIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    classes = list(EMOTIONS)
    train, val, _ = split_rows(rows_of(args.data, "train", args.train_limit, args.seed), args.seed)
    test = rows_of(args.data, "test", None, args.seed)
    cfg = TrainConfig(arch=args.arch, image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      workers=args.workers, device=args.device, seed=args.seed)
    t0 = time.time()
    result = train_model(train, val, classes, cfg, on_epoch=lambda e: print(f"epoch {e['epoch']} loss {e['train_loss']:.3f} val F1 {e['val']['macro_f1']:.3f}", flush=True))
    train_s = time.time() - t0
    pp = Preprocess(args.image_size)
    index = {c: i for i, c in enumerate(classes)}
    val_logits, _ = predict(result.model, val, classes, pp, args.batch_size, args.device, args.workers)
    t = fit_temperature(val_logits, np.array([index[r.label] for r in val]))
    out = {}
    for name, rows in (("test", test), ("test blurred sigma 3", blur_copy(test, Path("/tmp/curate-bench-blurred-test"), 3.0))):
        logits, _ = predict(result.model, rows, classes, pp, args.batch_size, args.device, args.workers)
        y = np.array([index[r.label] for r in rows])
        m = classification_metrics(y, logits.argmax(1), classes)
        m["ece_raw"] = expected_calibration_error(softmax(logits), y)
        m["ece_calibrated"] = expected_calibration_error(softmax(logits, t), y)
        out[name] = m
    device = "cuda " + torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    lines = [
        "## Teacher accuracy on FER2013 (bench/teacher.py)",
        "",
        f"{args.arch} from scratch (no pretrained weights can be downloaded here) at {args.image_size} px, {args.epochs} epoch(s), "
        f"{len(train)} train / {len(val)} val faces from the (blurred) train split, {device}; training took {train_s / 60:.1f} min "
        f"({result.train_images_per_s:.0f} images/s). Temperature {t:.2f} fitted on val. Reference: ResNet-50 ~72.9 % on FER2013 test "
        "(ImageNet-pretrained, full-resolution training, tens of epochs).",
        "",
        "| evaluated on | accuracy | balanced acc. | macro-F1 | ECE raw -> calibrated |",
        "|---|---|---|---|---|",
        *[f"| {k} ({v['n']}) | {100 * v['accuracy']:.1f} % | {100 * v['balanced_accuracy']:.1f} % | {v['macro_f1']:.3f} | "
          f"{v['ece_raw']:.3f} -> {v['ece_calibrated']:.3f} |" for k, v in out.items()],
        "",
        "Per-class recall (test): " + ", ".join(f"{c} {100 * r:.0f} %" for c, r in out["test"]["per_class_recall"].items()),
        "",
        "Per-class recall (test blurred): " + ", ".join(f"{c} {100 * r:.0f} %" for c, r in out["test blurred sigma 3"]["per_class_recall"].items()),
    ]
    write_section("teacher", "\n".join(lines), {"metrics": out, "temperature": t, "train_seconds": train_s, "history": result.history,
                                                 "args": vars(args) | {"data": str(args.data)}})


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
