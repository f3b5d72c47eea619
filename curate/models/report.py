"""A one-page PNG beside a checkpoint: confusion matrix, per-class recall, learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["write_report"]


def write_report(path: Path, classes: Sequence[str], metrics: dict[str, Any], history: list[dict[str, Any]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.array(metrics["confusion_matrix"], dtype=float)
    present = [i for i in range(len(classes)) if cm[i].sum() > 0 or cm[:, i].sum() > 0]
    cm = cm[np.ix_(present, present)]
    names = [classes[i] for i in present]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    ax = axes[0]
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (validation)")
    recall = metrics["per_class_recall"]
    axes[1].barh(list(recall), list(recall.values()), color="tab:blue")
    axes[1].set_xlim(0, 1)
    axes[1].set_title(f"per-class recall (macro-F1 {metrics['macro_f1']:.3f})")
    epochs = [h["epoch"] for h in history]
    axes[2].plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax2 = axes[2].twinx()
    ax2.plot(epochs, [h["val"]["macro_f1"] for h in history], "s-", color="tab:orange", label="val macro-F1")
    ax2.plot(epochs, [h["val"]["accuracy"] for h in history], "^-", color="tab:green", label="val accuracy")
    ax2.set_ylim(0, 1)
    from matplotlib.ticker import MaxNLocator

    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_xlabel("epoch")
    axes[2].set_title("learning curves")
    axes[2].legend(loc="upper left")
    ax2.legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path
