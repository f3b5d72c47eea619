"""``CURATE_HOME/reports/<dataset>/index.html``: one static page a person can open without a server.

Every workflow stage rewrites it (and ``curate report`` on demand), so it always shows where the
loop stands: class counts before and after curation, the faces removed for blur and occlusion (and blank frames),
duplicate and leakage groups, review progress, each checkpoint's metrics with its confusion
matrix, and the error clusters. Thumbnails are embedded as data URIs so the page survives being
copied or mailed, and the file is replaced atomically (a browser never reads half a page).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from pathlib import Path
from typing import Any

from curate.exceptions import CurateError

__all__ = ["build_report", "report_path"]


def report_path(home: Path, dataset: str) -> Path:
    return home / "reports" / dataset / "index.html"


def build_report(dataset: str, url: str, home: Path, examples: int = 12) -> dict[str, Any]:
    from curate.errors.trust import dataset_probability_quality
    from curate.files import atomic_write_bytes
    from curate.report import gather
    from curate.review.summary import review_status
    from curate.store.sql import ledger, session

    session.require_schema(url)
    with session.session_scope(url) as db:
        found = ledger.find_dataset(db, dataset)
        if found is None:
            raise CurateError(f"dataset {dataset!r} is not in the ledger; ingest it first")
        counts = gather.class_counts(db, found.id)
        blur_total, blur = gather.removed_examples(db, found.id, "blur", "blur", examples)
        occ_total, occ = gather.removed_examples(db, found.id, "occlusion", "occlusion", examples)
        blank_total, blank = gather.removed_examples(db, found.id, "blank", "blur", examples)
        models = gather.checkpoints(db, found.id)
        current = gather.current_labels_by_uid(db, found.id)
    review = review_status(url, dataset)
    trust = dataset_probability_quality(dataset, current)
    fo = gather.fiftyone_sections(dataset, examples)
    for face in blur + occ + blank:
        face["path"] = fo["filepaths"].get(face.pop("uid"), "")
    page = render(dataset, counts, (blur_total, blur), (occ_total, occ), fo, review, models, (blank_total, blank), trust)
    out = report_path(home, dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, page.encode())
    return {"dataset": dataset, "report": str(out), "bytes": len(page), "checkpoints": len(models), "clusters": len(fo["clusters"]),
            "removed_blur": blur_total, "removed_occlusion": occ_total, "removed_blank": blank_total, "teacher_trust": trust}


def _teacher_line(trust: dict[str, Any] | None) -> str:
    """What the teacher's out-of-fold probabilities are worth against the current labels: what routing and label issues rest on."""
    if not trust or trust.get("accuracy") is None:
        return ""
    words = (f"Teacher: out-of-fold accuracy {100 * trust['accuracy']:.1f} % on {trust['samples']} faces, against "
             f"{100 * trust['chance']:.1f} % for always answering {html.escape(str(trust['majority_class']))} "
             f"(lift {100 * trust['lift']:.1f} points)")
    if trust.get("trusted"):
        return f"<p>{words}: label issues are flagged from these probabilities.</p>"
    return (f"<p class=warn><b>warning</b>: {words}: too close to chance, so no label issue is flagged and review routing "
            "rests on a weak model; train the teacher longer (<code>curate teacher train --epochs N</code>).</p>")


def _thumb(path: str, size: int = 72) -> str:
    """A PNG data URI of the face, or '' when the file is gone (the caption still says which)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("L")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "PNG")
    except OSError:
        return ""
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _faces(faces: list[dict[str, Any]]) -> str:
    cells = []
    for face in faces:
        src = _thumb(face["path"])
        img = f'<img src="{src}" alt="{html.escape(Path(face["path"]).name)}">' if src else '<div class="missing">file missing</div>'
        cells.append(f'<figure title="{html.escape(face["path"])}">{img}<figcaption>{html.escape(face["caption"])}</figcaption></figure>')
    return '<div class="faces">' + "".join(cells) + "</div>" if cells else "<p class=muted>none</p>"


def _annotators(quality: dict[str, float] | None) -> str:
    """Each annotator's CROWDLAB quality, best first (nothing until two people answered the same face)."""
    if not quality:
        return ""
    listed = ", ".join(f"{html.escape(a)} {q:.2f}" for a, q in sorted(quality.items(), key=lambda kv: -kv[1]))
    return f"Annotator quality (CROWDLAB, from the faces two or more people answered): {listed}."


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _num(value: Any) -> str:
    """A metric as the page shows it: numbers formatted, anything else (an imported sidecar may say anything) escaped."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _faces_count(n: Any) -> str:
    return f" ({n:,} faces)" if isinstance(n, int) else ""


def _export_cells(export: dict[str, Any] | None) -> str:
    """The INT8 file's size, its latency per face on one core and the accuracy it lost (measured by `curate export`)."""
    if not export or not isinstance(export.get("size_int8_bytes"), (int, float)):
        return "<td class=muted>not exported</td><td></td><td></td>"
    change, faces = export.get("accuracy_change"), export.get("accuracy_faces")
    lost = (f"{100 * change:+.1f} points on {html.escape(str(export.get('accuracy_split')))} ({int(faces):,} faces)"
            if isinstance(change, float) and isinstance(faces, (int, float)) else "n/a")
    latency = export.get("latency_ms_int8")
    return (f"<td>{export['size_int8_bytes'] / 1e6:.1f} MB</td><td>{f'{latency:.2f}' if isinstance(latency, float) else 'n/a'}</td>"
            f"<td>{lost}</td>")


def _confusion(matrix: list[list[int]] | None, classes: list[str] | None) -> str:
    if not matrix:
        return ""
    classes = classes or [str(i) for i in range(len(matrix))]
    rows = []
    for name, row in zip(classes, matrix):
        total = sum(row) or 1
        cells = "".join(f'<td style="background:rgba(37,99,235,{v / total:.2f})" title="{v}">{v}</td>' for v in row)
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    head = "".join(f"<th>{html.escape(c[:5])}</th>" for c in classes)
    return f'<table class="cm"><tr><th>true \\ pred</th>{head}</tr>{"".join(rows)}</table>'


def render(dataset: str, counts: dict[str, dict[str, int]], blur: tuple[int, list], occ: tuple[int, list], fo: dict[str, Any],
           review: dict[str, Any], models: list[dict[str, Any]], blank: tuple[int, list] = (0, []),
           trust: dict[str, Any] | None = None) -> str:
    total = {k: sum(c[k] for c in counts.values()) for k in ("ingested", "curated", "current")}
    top = max([c["ingested"] for c in counts.values()] or [1]) or 1
    count_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{c['ingested']}</td><td>{c['curated']}</td><td>{c['current']}</td>"
        f'<td><div class="bar" style="width:{160 * c["current"] / top:.0f}px"></div></td></tr>' for k, c in counts.items())
    dup = fo["duplicates"]
    dup_groups = "".join(f'<div class="group{" leak" if g["leak"] else ""}"><b>{"leak across splits" if g["leak"] else "duplicate"}</b>'
                         f'{_faces(g["faces"])}</div>' for g in dup["examples"])
    review_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['pending']}</td><td>{v['done']}</td><td>{v['skipped']}</td>"
                          f"<td>{v['conflict']}</td></tr>" for k, v in review["per_class"].items())
    model_rows = "".join(
        f"<tr><td>{html.escape(m['kind'])}</td><td title=\"{html.escape(m['path'])}\">{html.escape(m['name'])}</td><td>{html.escape(m['arch'])}</td>"
        f"<td>{m['created']}</td><td>{html.escape(str(m['split']))}{_faces_count(m.get('n'))}</td><td>{_num(m['accuracy'])}</td>"
        f"<td>{_num(m['balanced_accuracy'])}</td><td>{_num(m['macro_f1'])}</td><td>{_num(m['ece'])}</td>{_export_cells(m.get('export'))}</tr>"
        for m in models)
    matrices = "".join(f"<div class=cmbox><h4>{html.escape(m['kind'])} {html.escape(m['name'])} ({html.escape(str(m['split']))})</h4>"
                       f"{_confusion(m['confusion'], m['classes'])}</div>" for m in models if m["confusion"])
    clusters = "".join(f"<div class=cluster><h4>cluster {c['cluster']}: {c['size']} faces, mostly {html.escape(c['dominant'])} "
                       f"({100 * c['share']:.0f} %)</h4>{_faces(c['faces'])}</div>" for c in fo["clusters"])
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    teacher = _teacher_line(trust)
    if clusters:
        cluster_part = clusters
    elif fo["errors_ran"]:
        cluster_part = (f"<p>curate errors ran: {fo['label_issues']} label issues flagged, no error clusters"
                        + ("" if not trust or trust.get("trusted") else " (the teacher is too close to chance to flag any; see Models)")
                        + ".</p>")
    else:
        cluster_part = "<p class=muted>none yet: run <code>curate errors</code></p>"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>curate report: {html.escape(dataset)}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1f2937;padding:0 16px}}
h1{{margin-bottom:0}} h2{{border-bottom:1px solid #e5e7eb;padding-bottom:4px;margin-top:32px}} .muted{{color:#6b7280}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{padding:3px 10px;border-bottom:1px solid #f3f4f6;text-align:right}}
td:first-child,th:first-child{{text-align:left}} .bar{{height:10px;background:#2563eb;border-radius:2px}}
.faces{{display:flex;flex-wrap:wrap;gap:8px}} figure{{margin:0;width:84px;text-align:center}} figure img{{width:72px;height:72px;
image-rendering:pixelated;border-radius:4px;border:1px solid #d1d5db}} figcaption{{font-size:11px;color:#4b5563}}
.missing{{width:72px;height:72px;background:#fee2e2;font-size:10px;display:flex;align-items:center;justify-content:center}}
.group{{display:inline-block;margin:0 16px 12px 0;vertical-align:top}} .leak b{{color:#b91c1c}}
.cm td{{text-align:center;min-width:34px}} .cmbox{{display:inline-block;margin-right:24px;vertical-align:top}}
.warn{{background:#fef3c7;padding:6px 10px;border-radius:4px}} .stat{{display:inline-block;margin-right:28px}} .stat b{{font-size:22px;display:block}} code{{background:#f3f4f6;padding:1px 4px}}
</style></head><body>
<h1>{html.escape(dataset)}</h1><p class=muted>curate report, written {now}; every workflow stage rewrites it.</p>
<div><span class=stat><b>{total['ingested']}</b>faces ingested</span><span class=stat><b>{total['curated']}</b>in the curated set</span>
<span class=stat><b>{blur[0] + occ[0] + blank[0]}</b>removed for quality</span><span class=stat><b>{review['done']}</b>reviewed by people</span>
<span class=stat><b>{len(models)}</b>checkpoints</span></div>
<h2 id="classes">Faces per class</h2>
<table><tr><th>class</th><th>ingested</th><th>curated</th><th>current label</th><th></th></tr>{count_rows}</table>
<p class=muted>ingested: the dataset's own label; curated: after removing faces for blur and occlusion and blank frames; current label: after human review.</p>
<h2 id="removed">Removed for quality</h2>
<h3>Blur: {blur[0]} faces (blur &gt; threshold), blurriest first</h3>{_faces(blur[1])}
<h3>Occlusion: {occ[0]} faces (occluded share &gt; threshold), most hidden first</h3>{_faces(occ[1])}
<h3>Blank frames: {blank[0]} images with (nearly) one grey level, no face to score</h3>{_faces(blank[1])}
<h2 id="duplicates">Duplicates and leakage</h2>
<p>{dup['groups']} groups of identical or near-identical faces; <b>{dup['cross_split_groups']}</b> of them span splits
(train/test leakage: view <code>leakage</code> in the App).</p>{dup_groups}
<h2 id="review">Review</h2>
<p>{review['tasks']} tasks: {review['pending']} pending, {review['done']} done, {review['skipped']} skipped, {review['conflict']} tied.
People changed the label in {_pct(review['human_changed_label'])} of decided tasks and agreed with the model in
{_pct(review['agreement_with_model'])}. Reviewers took {review['removed_by_review']['not_a_face']} faces out of the working set as
"not a face" and {review['removed_by_review']['unclear']} as "unclear" (FiftyOne views <code>not_a_face</code>, <code>unclear</code>).
{_annotators(review.get('annotator_quality'))}</p>
<table><tr><th>label at push</th><th>pending</th><th>done</th><th>skipped</th><th>tied</th></tr>{review_rows}</table>
<h2 id="models">Models</h2>
<table><tr><th>kind</th><th>checkpoint</th><th>arch</th><th>created</th><th>on</th><th>accuracy</th><th>balanced</th><th>macro-F1</th>
<th>ECE</th><th>INT8 file</th><th>INT8 ms/face (1 core)</th><th>INT8 accuracy change</th></tr>{model_rows}</table>{teacher}{matrices or '<p class=muted>no checkpoints yet</p>'}
<h2 id="clusters">Error clusters</h2>
{teacher}{cluster_part}
<p class=muted>Browse them in the FiftyOne App: <code>curate app --dataset {html.escape(dataset)}</code> (saved views
{html.escape(', '.join(fo['views'][:6]) or 'appear after curate errors')}).</p>
</body></html>
"""
