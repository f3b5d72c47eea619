"""`curate retrain`: class-balanced MobileNetV2 checkpoints from the ledger's current labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.output import Reporter, reporter


def _human(r: Reporter) -> None:
    s = r.summary
    m = s["val_metrics"]
    r.say(f"[bold]retrain[/] {s['dataset']}: best epoch {s['best_epoch']} -> {s['best_checkpoint']}")
    r.say(f"  val accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}")
    r.say(f"  balance {s['balance']}: class counts {s['class_counts_before']} -> {s['class_counts_after']}")
    r.say(f"  report {s['report']}")


def retrain(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Any timm architecture [default: mobilenetv2_100].")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", help="Local weights file or hub name (default: from scratch).")] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=16, help="Input size in px [default: 48].")] = None,
    stem_stride: Annotated[Optional[int], typer.Option("--stem-stride", min=1, max=4, help="Stem down-sampling 1, 2 or 4 [default: the recipe's for the arch and size].")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="[default: the recipe's]")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate [default: the recipe's].")] = None,
    balance: Annotated[str, typer.Option("--balance", help="oversample, undersample, class-weights or none.")] = "oversample",
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="Distil from the teacher (T=2, 0.7 CE + 0.3 KD).")] = False,
    teacher: Annotated[Optional[Path], typer.Option("--teacher", help="Teacher checkpoint (default: cached prelabel logits or newest teacher).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="state.pt of an interrupted run: continue exactly where it stopped.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for run folders (default CURATE_HOME/checkpoints/<dataset>).")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps-per-epoch", min=1, help="Cap steps per epoch (smoke runs).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda.")] = None,
    json_: JsonOption = False,
) -> None:
    """Train balanced checkpoints on quality-passing samples; the best by validation macro-F1 is kept."""
    with reporter(json_, _human) as rep:
        from curate.models.balance import BALANCE_MODES
        from curate.models.data import default_workers
        from curate.exceptions import CurateError
        from curate.models.retrain import RetrainConfig
        from curate.retrain.stage import RetrainOptions, run_retrain

        if balance not in BALANCE_MODES:
            raise CurateError(f"--balance {balance!r} must be one of {', '.join(BALANCE_MODES)}")
        s = settings_from(ctx, dataset=dataset, device=device, batch_size=batch_size)
        given = {"arch": arch, "weights": weights, "image_size": image_size, "stem_stride": stem_stride, "epochs": epochs, "lr": lr,
                 "max_steps_per_epoch": max_steps}
        cfg = RetrainConfig(batch_size=s.batch_size, balance=balance, distill=distill, device=s.device, workers=default_workers(s.device),
                            seed=s.seed, **{k: v for k, v in given.items() if v is not None})
        opts = RetrainOptions(dataset=s.dataset, config=cfg, teacher=teacher, resume=resume, out=out)
        rep.update(**run_retrain(opts, s.database_url, s.home, say=rep.say))
