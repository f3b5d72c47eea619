"""`curate errors`: find label issues and model mistakes, cluster them, and make them browsable."""

from __future__ import annotations



from curate.output import Reporter


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
