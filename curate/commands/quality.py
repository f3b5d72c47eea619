"""`curate quality`: re-apply blur/occlusion thresholds to stored scores, without re-scoring."""

from __future__ import annotations


import typer

from curate.commands.common import DatasetOption, JsonOption, settings_from
from curate.commands.ingest import BlurOption, OcclusionOption
from curate.output import Reporter, reporter


def _human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: blur > {s['blur_max']} removes {s['removed']['blur']}, occlusion > {s['occlusion_max']} "
          f"removes {s['removed']['occlusion']}; {s['curated']} of {s['samples']} samples in 'curated' "
          f"({s['changed']} changed state)")


def quality(ctx: typer.Context, dataset: DatasetOption = None, blur_max: BlurOption = None, occlusion_max: OcclusionOption = None,
            json_: JsonOption = False) -> None:
    """Re-apply quality thresholds (settings < workflow < env < these options) to a dataset."""
    with reporter(json_, _human) as out:
        from curate.quality.apply import apply_thresholds

        settings = settings_from(ctx, dataset=dataset, blur_max=blur_max, occlusion_max=occlusion_max)
        out.update(**apply_thresholds(settings.dataset, settings.database_url, settings.blur_max, settings.occlusion_max))


