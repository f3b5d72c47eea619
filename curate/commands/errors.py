"""`curate errors`: find label issues and model mistakes, cluster them, and make them browsable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.output import Reporter, reporter


def _human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: {s['label_issues']} likely label errors among {s['with_oof']} samples with out-of-fold "
          f"probabilities; {s['mistakes']} checkpoint mistakes on {s['checked_by_checkpoint']} val/test samples")
    for c in s["clusters"]:
        r.say(f"  cluster {c['cluster']}: {c['size']:>5} samples, mostly {c['dominant']} ({100 * c['dominant_share']:.0f} %), "
              f"blur {c['mean_blur']}, occlusion {c['mean_occlusion']}  -> view '{c['view']}'")
    if s["top_confusions"]:
        r.say("top confusions: " + ", ".join(f"{t['true']} -> {t['suggested']} ({t['count']})" for t in s["top_confusions"]))
    if s["brain"]:
        r.say(f"embeddings visualization under brain key '{s['brain']['brain_key']}'; browse with `curate app --dataset {s['dataset']}`")


def errors(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Also record this checkpoint's mistakes on val/test.")] = None,
    clusters: Annotated[Optional[int], typer.Option("--clusters", min=1, help="k for k-means (default: chosen by silhouette).")] = None,
    viz: Annotated[str, typer.Option("--viz", help="Embedding visualization: pca, tsne, umap (needs umap-learn) or none.")] = "pca",
    json_: JsonOption = False,
) -> None:
    """Label issues (cleanlab), checkpoint mistakes, error clusters as saved views, embedding visualization."""
    with reporter(json_, _human) as rep:
        from curate.errors.stage import analyze_errors
        from curate.exceptions import CurateError

        if viz not in ("pca", "tsne", "umap", "none"):
            raise CurateError(f"--viz {viz!r} must be pca, tsne, umap or none")

        s = settings_from(ctx, dataset=dataset)
        rep.update(**analyze_errors(s.dataset, s.database_url, checkpoint, clusters, viz_method=viz if viz != "none" else "pca",
                                    visualize=viz != "none"))
        if rep.summary.get("warning"):
            rep.say(f"warning: {rep.summary['warning']}")
