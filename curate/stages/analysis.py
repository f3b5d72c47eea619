"""Stages that look at the result: ``errors`` (label issues and error clusters) and ``report`` (the HTML page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curate.stages.spec import Stage, StageContext, option

VIZ = ("pca", "tsne", "umap", "none")


@dataclass
class ErrorsStageOptions:
    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    checkpoint: str | None = option(None, "Also record this checkpoint's mistakes on val/test: a file, or 'best' (the newest "
                                          "retrain's best).")
    clusters: int | None = option(None, "k for k-means (default: chosen by silhouette).", minimum=1)
    viz: str = option("pca", "Embedding visualization: pca, tsne, umap (needs umap-learn) or none.",
                      choices=("pca", "tsne", "umap", "none"))


def run_errors(ctx: StageContext, opts: ErrorsStageOptions) -> dict[str, Any]:
    from curate.errors.stage import analyze_errors
    from curate.exceptions import CurateError
    from curate.store.sql.registry import resolve_checkpoint, verify_registered

    if opts.viz not in VIZ:
        raise CurateError(f"viz {opts.viz!r} must be one of {', '.join(VIZ)}")
    s = ctx.settings
    checkpoint = (verify_registered(s.database_url, ctx.path(resolve_checkpoint(opts.checkpoint, s.database_url, s.dataset)))
                  if opts.checkpoint else None)
    return analyze_errors(s.dataset, s.database_url, checkpoint, opts.clusters, viz_method=opts.viz if opts.viz != "none" else "pca",
                          visualize=opts.viz != "none")


@dataclass
class ReportStageOptions:
    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    examples: int = option(12, "Thumbnails per section.", minimum=1, maximum=200)


def run_report(ctx: StageContext, opts: ReportStageOptions) -> dict[str, Any]:
    from curate.report.build import build_report

    s = ctx.settings
    return build_report(s.dataset, s.database_url, s.home, examples=opts.examples)


def _errors_human(r: Any) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: {s['label_issues']} likely label errors among {s['with_oof']} samples with out-of-fold "
          f"probabilities; {s['mistakes']} checkpoint mistakes on {s['checked_by_checkpoint']} val/test samples")
    q = s.get("probability_quality") or {}
    if q.get("accuracy") is not None and q.get("trusted"):
        r.say(f"teacher: out-of-fold accuracy {100 * q['accuracy']:.1f} % vs {100 * q['chance']:.1f} % chance "
              f"(lift {100 * q['lift']:.1f} points): label issues flagged")
    for c in s["clusters"]:
        r.say(f"  cluster {c['cluster']}: {c['size']:>5} samples, mostly {c['dominant']} ({100 * c['dominant_share']:.0f} %), "
              f"blur {c['mean_blur']}, occlusion {c['mean_occlusion']}  -> view '{c['view']}'")
    if s["top_confusions"]:
        r.say("top confusions: " + ", ".join(f"{t['true']} -> {t['suggested']} ({t['count']})" for t in s["top_confusions"]))
    if s["brain"]:
        r.say(f"embeddings visualization under brain key '{s['brain']['brain_key']}'; browse with `curate app --dataset {s['dataset']}`")


def _report_human(r: Any) -> None:
    s = r.summary
    r.say(f"report: {s['report']}  (open it in a browser; browse the faces with `curate app --dataset {s['dataset']}`)")


ERRORS = Stage("errors", "errors", ErrorsStageOptions, run_errors,
               "Label issues (cleanlab), checkpoint mistakes, error clusters as saved views, embedding visualization.",
               _errors_human, writes=True)
REPORT = Stage("report", "report", ReportStageOptions, run_report,
               "Write the dataset's HTML report (counts, removed faces, duplicates, review, models, error clusters); print its path.",
               _report_human)
