"""Train from a manifest where FiftyOne and SQL are absent (a GPU machine): the GPU path of the loop.

    curate manifest export --dataset fer2013 --out fer2013.csv --relative-to ~/data   # on the curate machine
    python -m curate.models.from_manifest teacher fer2013.csv --out runs/ [--root ~/data] [--epochs N] [--folds 2]
    python -m curate.models.from_manifest student fer2013.csv --out runs/ [--epochs N]
    curate teacher import runs/teacher-*/teacher.safetensors --dataset fer2013       # back on the curate machine

The teacher is trained exactly as `curate teacher train` trains it (same code, same recipe, same
resumable run folder: re-run with ``--resume RUN_DIR`` after a kill); its out-of-fold probabilities
travel back in ``teacher.oof.npz`` keyed by sample_uid. Only torch, timm and numpy are needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from curate.exceptions import CurateError

    parser = argparse.ArgumentParser(prog="python -m curate.models.from_manifest", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("teacher", "student"))
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="Folder for run folders.")
    parser.add_argument("--root", type=Path, default=None, help="Where relative manifest paths start (default: the manifest's folder).")
    parser.add_argument("--dataset", default=None, help="Dataset name recorded in the checkpoint (default: the manifest's file name).")
    parser.add_argument("--arch", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--oof", default="cross", choices=("cross", "none"))
    parser.add_argument("--max-steps-per-epoch", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--nproc", type=int, default=None, help="Data-parallel training processes (one GPU each on CUDA).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", type=Path, default=None, help="Teacher: a run folder; student: its state.pt.")
    args = parser.parse_args(argv)
    try:
        summary = _run(args)
    except CurateError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps({"ok": True, **summary}, default=str))
    return 0


def _run(args: argparse.Namespace) -> dict:
    from curate.models.data import default_workers
    from curate.models.manifest import read_manifest
    from curate.prelabel.teacher import split_rows

    rows = [r for r in read_manifest(args.manifest, args.root) if r.label]
    train, val, test = split_rows(rows, args.seed)
    given = {"arch": args.arch, "epochs": args.epochs, "image_size": args.image_size, "batch_size": args.batch_size, "lr": args.lr,
             "max_steps_per_epoch": args.max_steps_per_epoch, "nproc": args.nproc}
    common = {"device": args.device, "workers": default_workers(args.device), "seed": args.seed, **{k: v for k, v in given.items() if v is not None}}
    dataset = args.dataset or args.manifest.stem
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.kind == "teacher":
        from curate.models.train import TrainConfig
        from curate.prelabel.teacher import TeacherOptions, fit_teacher

        opts = TeacherOptions(dataset=dataset, config=TrainConfig(**common), folds=args.folds, oof=args.oof, out=args.out, resume=args.resume)
        return fit_teacher(opts, train, val, test, args.out, say)
    import datetime as dt

    from curate.models.retrain import RetrainConfig, retrain
    from curate.taxonomy import EMOTIONS

    cfg = RetrainConfig(**common)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.resume.parent if args.resume else args.out / f"retrain-{cfg.arch}-{stamp}"
    result = retrain(train, val, EMOTIONS, cfg, out_dir, {"kind": "retrain", "dataset": dataset}, None, args.resume,
                     lambda rec, _ckpt: say(f"epoch {rec['epoch']}/{cfg.epochs}: val accuracy {rec['val']['accuracy']:.3f}"))
    return {"best_checkpoint": str(out_dir / "best.safetensors"), "best_epoch": result["best_epoch"], "out_dir": str(out_dir)}


if __name__ == "__main__":
    sys.exit(main())
