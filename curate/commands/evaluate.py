"""`curate export` (ONNX, INT8) and `curate compare` (McNemar) for registered checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.output import Reporter, reporter


def _rows(ctx: typer.Context, dataset: Optional[str], split: str):  # noqa: ANN202
    from curate.models.manifest import from_dataset

    s = settings_from(ctx, dataset=dataset)
    rows = [r for r in from_dataset(s.dataset, s.database_url, curated_only=True) if r.label and (split == "all" or r.split == split)]
    return s, rows


def _export_human(r: Reporter) -> None:
    s = r.summary
    r.say(f"{s['onnx']}: {s['size_fp32_bytes'] / 1e6:.1f} MB, max |onnx - torch| = {s['max_abs_diff']:.2e} on {s['inputs_checked']} inputs")
    if "onnx_int8" in s:
        r.say(f"{s['onnx_int8']}: {s['size_int8_bytes'] / 1e6:.1f} MB ({100 * s['int8_size_ratio']:.0f} %), top-1 agreement "
              f"{100 * s['int8_top1_agreement']:.1f} %" + (f", accuracy {s['accuracy_fp32']:.3f} -> {s['accuracy_int8']:.3f}" if "accuracy_int8" in s else ""))


def export(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="A curate checkpoint (.safetensors with its .json sidecar).")],
    format: Annotated[str, typer.Option("--format", help="Only onnx for now.")] = "onnx",  # noqa: A002
    int8: Annotated[bool, typer.Option("--int8", help="Also write a statically quantized INT8 model.")] = False,
    dataset: DatasetOption = None,
    split: Annotated[str, typer.Option("--split", help="Samples used to check and calibrate (test, val, train, all); "
                                       "an empty test split falls back to val, then to every labeled sample.")] = "test",
    limit: Annotated[int, typer.Option("--limit", min=1)] = 512,
    out: Annotated[Optional[Path], typer.Option("--out")] = None,
    json_: JsonOption = False,
) -> None:
    """Export CHECKPOINT to ONNX, check it against torch (max abs diff), optionally quantize to INT8."""
    with reporter(json_, _export_human) as rep:
        from curate.exceptions import CurateError
        from curate.models.export import export_onnx

        if format != "onnx":
            raise CurateError(f"--format {format!r}: only onnx is supported")
        from curate.models.checkpoint import read_sidecar

        # Real faces whenever a dataset is known: the one named, else the one the checkpoint was trained on.
        name = dataset or read_sidecar(checkpoint).get("dataset")
        rows, used = [], None
        if name is not None:
            for candidate in (split, "val", "all") if split == "test" else (split,):
                try:
                    _, rows = _rows(ctx, name, candidate)
                except CurateError:
                    if dataset is not None:
                        raise
                    break  # the checkpoint's dataset is not on this machine: random inputs, as before
                if rows:
                    used = candidate
                    break
            if not rows and dataset is not None:
                raise CurateError(f"dataset {name!r}: no labeled quality-passing samples to check the export on")
        rep.update(**export_onnx(checkpoint, out, int8, rows[:limit]), checked_split=used, checked_dataset=name if rows else None)


def _compare_human(r: Reporter) -> None:
    s = r.summary
    verdict = "significantly" if s["significant"] else "not significantly"
    r.say(f"A {Path(s['a']).name}: accuracy {s['accuracy_a']:.3f}; B {Path(s['b']).name}: accuracy {s['accuracy_b']:.3f} on {s['n']} {s['split']} samples")
    r.say(f"McNemar: A-only correct {s['a_only_correct']}, B-only correct {s['b_only_correct']}, p = {s['p_value']:.4g}: "
          f"{s['better']} is {verdict} better (alpha {s['alpha']})")
    for c, d in s["per_class"].items():
        r.say(f"  {c:<9} recall {d['recall_a']:.3f} -> {d['recall_b']:.3f} ({d['delta_b_minus_a']:+.3f}, n={d['n']})")


def compare(
    ctx: typer.Context,
    checkpoint_a: Annotated[Path, typer.Argument(help="Checkpoint A.")],
    checkpoint_b: Annotated[Path, typer.Argument(help="Checkpoint B.")],
    dataset: DatasetOption = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    json_: JsonOption = False,
) -> None:
    """Paired comparison on the same samples: McNemar's exact test and per-class recall deltas."""
    with reporter(json_, _compare_human) as rep:
        import numpy as np

        from curate.exceptions import CurateError
        from curate.models.checkpoint import load_checkpoint
        from curate.models.compare import mcnemar, per_class_recall_delta
        from curate.models.infer import predict
        from curate.models.preprocess import Preprocess

        s, rows = _rows(ctx, dataset, split)
        if not rows:
            raise CurateError(f"dataset {s.dataset!r}: no labeled quality-passing samples in split {split!r}")
        preds, classes = [], None
        for ckpt in (checkpoint_a, checkpoint_b):
            model, side = load_checkpoint(ckpt)
            if classes is not None and side["classes"] != classes:
                raise CurateError(f"{ckpt}: classes differ from {checkpoint_a}")
            classes = side["classes"]
            logits, _ = predict(model, rows, classes, Preprocess.from_dict(side["preprocess"]), batch_size or s.batch_size, s.device)
            preds.append(logits.argmax(1))
        y = np.array([classes.index(r.label) for r in rows])
        result = mcnemar(preds[0] == y, preds[1] == y)
        rep.update(a=str(checkpoint_a), b=str(checkpoint_b), dataset=s.dataset, split=split, **result,
                   per_class=per_class_recall_delta(y, preds[0], preds[1], classes))
