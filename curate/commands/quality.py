"""`curate quality`: re-apply blur/occlusion thresholds to stored scores, without re-scoring."""

from __future__ import annotations



from curate.output import Reporter


def _human(r: Reporter) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: blur > {s['blur_max']} removes {s['removed']['blur']}, occlusion > {s['occlusion_max']} "
          f"removes {s['removed']['occlusion']}; {s['curated']} of {s['samples']} samples in 'curated' "
          f"({s['changed']} changed state)")
