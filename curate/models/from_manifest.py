"""Train from a manifest where FiftyOne and SQL are absent (a GPU machine): the GPU path of the loop.

    curate manifest export --dataset fer2013 --out fer2013.csv --relative-to ~/data   # on the curate machine
    python -m curate.models.from_manifest teacher fer2013.csv --out runs/ [--root ~/data] [--epochs N] [--folds 2]
    python -m curate.models.from_manifest student fer2013.csv --out runs/ [--epochs N]
    curate teacher import runs/teacher-*/teacher.safetensors --dataset fer2013       # back on the curate machine

The teacher is trained exactly as `curate teacher train` trains it (same code, same recipe, same
resumable run folder: re-run with ``--resume RUN_DIR`` after a kill); its out-of-fold probabilities
travel back in ``teacher.oof.npz`` keyed by sample_uid. Only torch, timm and numpy are needed.

The options are built from the recipe's dataclasses (TrainConfig and TeacherPlan for the teacher,
RetrainConfig for the student), so every knob `curate teacher train` and `curate retrain` have is
here too, with the same default and help, and none can drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any


def _option_type(hint: Any) -> tuple[Any, bool]:
    """(argparse type, takes a list) for a dataclass field's hint; Optional[T] is T (as the stage options read it)."""
    from curate.options import base_type

    base, _ = base_type(hint)
    if typing.get_origin(base) is list:
        return typing.get_args(base)[0], True
    return base, False


def _default_text(name: str, teacher: Any, student: Any) -> str:
    if name == "workers":
        return "follows the device"
    if teacher == student:
        return str(teacher)
    return f"{teacher} for the teacher, {student} for the student"


def build_parser() -> argparse.ArgumentParser:
    """One parser whose options are every knob of the recipe (TrainConfig, TeacherPlan, RetrainConfig), typed from
    the dataclasses, so `--help` lists them all; an option not given keeps the recipe's default for that kind."""
    from curate.models.config import RetrainConfig, TeacherPlan, TrainConfig

    parser = argparse.ArgumentParser(prog="python -m curate.models.from_manifest", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("teacher", "student"))
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="Folder for run folders.")
    parser.add_argument("--root", type=Path, default=None, help="Where relative manifest paths start (default: the manifest's folder).")
    parser.add_argument("--dataset", default=None, help="Dataset name recorded in the checkpoint (default: the manifest's file name).")
    parser.add_argument("--resume", type=Path, default=None, help="Teacher: a run folder; student: its state.pt.")
    teacher_fields = {f.name for f in dataclasses.fields(TrainConfig)} | {f.name for f in dataclasses.fields(TeacherPlan)}
    student_fields = {f.name for f in dataclasses.fields(RetrainConfig)}
    for cls in (RetrainConfig, TeacherPlan):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind, takes_list = _option_type(hints[f.name])
            only = "" if f.name in teacher_fields and f.name in student_fields else (
                "[teacher] " if f.name in teacher_fields else "[student] ")
            teacher_default = getattr(TrainConfig, f.name, getattr(TeacherPlan, f.name, None))
            student_default = getattr(RetrainConfig, f.name, None)
            shown = (_default_text(f.name, teacher_default, student_default) if not only
                     else str(teacher_default if only == "[teacher] " else student_default))
            help_text = f"{only}{f.metadata.get('help') or ''} [default: {shown}]"
            flag = "--" + f.name.replace("_", "-")
            if kind is bool:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            else:
                parser.add_argument(flag, type=kind, nargs="+" if takes_list else None, default=None, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    from curate.exceptions import CurateError

    args = build_parser().parse_args(argv)
    try:
        summary = _run(args)
    except CurateError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps({"ok": True, **summary}, default=str))
    return 0


def _given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def _run(args: argparse.Namespace) -> dict:
    from curate.exceptions import CurateError
    from curate.models.config import RetrainConfig, TeacherPlan, TrainConfig
    from curate.models.data import default_workers
    from curate.models.manifest import read_manifest, split_rows

    given_kind = {"teacher": TrainConfig, "student": RetrainConfig}[args.kind]
    foreign = [f.name for f in [*dataclasses.fields(RetrainConfig), *dataclasses.fields(TeacherPlan)]
               if getattr(args, f.name) is not None and f.name not in {g.name for g in dataclasses.fields(given_kind)}
               and not (args.kind == "teacher" and f.name in {g.name for g in dataclasses.fields(TeacherPlan)})]
    if foreign:
        raise CurateError(f"{args.kind}: --{foreign[0].replace('_', '-')} is not an option of the {args.kind}")

    rows = [r for r in read_manifest(args.manifest, args.root) if r.label]
    seed = args.seed if args.seed is not None else TrainConfig.seed
    train, val, test = split_rows(rows, seed)
    device = args.device or TrainConfig.device
    dataset = args.dataset or args.manifest.stem
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.kind == "teacher":
        from curate.models.teacher import TeacherOptions, fit_teacher

        config = TrainConfig(**{"workers": default_workers(device), **_given(args, TrainConfig)})
        opts = TeacherOptions(dataset=dataset, config=config, out=args.out, resume=args.resume, **_given(args, TeacherPlan))
        return fit_teacher(opts, train, val, test, args.out, say)
    import datetime as dt

    from curate.models.fit import fit
    from curate.taxonomy import EMOTIONS

    cfg = RetrainConfig(**{"workers": default_workers(device), **_given(args, RetrainConfig)})
    if cfg.distill:
        raise CurateError("--distill needs the teacher's logits for every training face; distil with `curate retrain --distill`, "
                          "where the teacher's prelabel logits are stored")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.resume.parent if args.resume else args.out / f"retrain-{cfg.arch}-{stamp}"
    result = fit(train, val, EMOTIONS, cfg, out_dir, {"kind": "retrain", "dataset": dataset}, None, args.resume,
                 lambda rec, _ckpt: say(f"epoch {rec['epoch']}/{cfg.epochs}: val accuracy {rec['val']['accuracy']:.3f}"))
    return {"best_checkpoint": str(out_dir / "best.safetensors"), "best_epoch": result["best_epoch"], "out_dir": str(out_dir)}


if __name__ == "__main__":
    sys.exit(main())
