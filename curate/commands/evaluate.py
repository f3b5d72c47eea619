"""`curate export` (ONNX, INT8) and `curate compare` (McNemar) for registered checkpoints."""

from __future__ import annotations

from pathlib import Path


from curate.output import Reporter




def _export_human(r: Reporter) -> None:
    s = r.summary
    r.say(f"{s['onnx']}: {s['size_fp32_bytes'] / 1e6:.1f} MB, max |onnx - torch| = {s['max_abs_diff']:.2e} on {s['inputs_checked']} inputs")
    if "onnx_int8" in s:
        r.say(f"{s['onnx_int8']}: {s['size_int8_bytes'] / 1e6:.1f} MB ({100 * s['int8_size_ratio']:.0f} %), top-1 agreement "
              f"{100 * s['int8_top1_agreement']:.1f} %" + (f", accuracy {s['accuracy_fp32']:.3f} -> {s['accuracy_int8']:.3f}" if "accuracy_int8" in s else ""))




def _compare_human(r: Reporter) -> None:
    s = r.summary
    verdict = "significantly" if s["significant"] else "not significantly"
    r.say(f"A {Path(s['a']).name}: accuracy {s['accuracy_a']:.3f}; B {Path(s['b']).name}: accuracy {s['accuracy_b']:.3f} on {s['n']} {s['split']} samples")
    r.say(f"McNemar: A-only correct {s['a_only_correct']}, B-only correct {s['b_only_correct']}, p = {s['p_value']:.4g}: "
          f"{s['better']} is {verdict} better (alpha {s['alpha']})")
    for c, d in s["per_class"].items():
        r.say(f"  {c:<9} recall {d['recall_a']:.3f} -> {d['recall_b']:.3f} ({d['delta_b_minus_a']:+.3f}, n={d['n']})")
