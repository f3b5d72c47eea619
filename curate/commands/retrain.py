"""`curate retrain`: class-balanced MobileNetV2 checkpoints from the ledger's current labels."""

from __future__ import annotations



from curate.output import Reporter


def _human(r: Reporter) -> None:
    s = r.summary
    m = s["val_metrics"]
    r.say(f"[bold]retrain[/] {s['dataset']}: best epoch {s['best_epoch']} -> {s['best_checkpoint']}")
    r.say(f"  val accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}")
    r.say(f"  balance {s['balance']}: class counts {s['class_counts_before']} -> {s['class_counts_after']}")
    r.say(f"  report {s['report']}")
