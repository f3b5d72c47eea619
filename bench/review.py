"""Review round trip against a real Label Studio: curate's push and pull vs the bare SDK calls they wrap.

    python bench/review.py [--data ../shared/data/fer2013/test] [--images 500]

Baselines, measured in the same run on the same server:
- push: a bare `projects.import_tasks` of the same payloads, in the same batches, into a scratch
  project (no routing, no ledger, no FiftyOne mirror);
- pull: a bare `tasks.list(fields="all")` over the reviewed project (the one read a pull needs).
Also: a no-op re-pull (nothing changed since the last one), and a push in upload mode (a server
known only by URL), which sends every image over HTTP.

Teacher predictions are drawn at random below the threshold so every face is routed: training a
teacher is not what this measures. Reviewers are simulated through the SDK (one annotation per task).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section  # noqa: E402

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _copy_faces(src: Path, dst: Path, n: int) -> None:
    per_class = max(1, n // len(CLASSES))
    for cls in CLASSES:
        files = sorted((src / cls).glob("*.jpg"))[:per_class]
        for k, f in enumerate(files):  # the class-folder layout wants both splits; which one does not matter here
            split = "train" if k % 2 else "test"
            (dst / split / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst / split / cls / f.name)


def _dataset(root: Path, name: str, home: Path, url: str, rng: np.random.Generator) -> int:
    from curate.ingest.stage import IngestOptions, ingest
    from curate.models.manifest import from_dataset
    from curate.prelabel import records
    from curate.taxonomy import EMOTIONS

    ingest(IngestOptions(kind="fer2013", root=root, dataset=name, workers=1, blur_max=1.0, occlusion_max=1.0), url, home)
    rows = from_dataset(name, url)
    n = len(rows)
    run_id, _ = records.prelabel_run(url, name, "resnet50", "ee" * 32, {})
    labels = [EMOTIONS[i] for i in rng.integers(0, 8, n)]
    records.store_prelabels(url, name, run_id, "ee" * 32, [r.uid for r in rows], labels, rng.uniform(0.2, 0.89, n), rng.normal(size=(n, 8)),
                            rng.normal(size=(n, 4)), {})
    return n


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/fer2013/test")
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: FER2013 test folders not found")
    work = Path(tempfile.mkdtemp(prefix="curate-bench-review-"))
    home = work / "home"
    os.environ["CURATE_HOME"] = str(home)
    url = f"sqlite:///{home / 'curate.db'}"
    os.environ["CURATE_DB_URL"] = url
    images = work / "images"
    _copy_faces(args.data, images, args.images)
    rng = np.random.default_rng(0)
    stamp = os.getpid()
    n = _dataset(images, f"bench_review_{stamp}", home, url, rng)
    n_up = _dataset(images, f"bench_review_up_{stamp}", home, url, rng)

    from label_studio_sdk import LabelStudio

    from curate.ports import free_port
    from curate.review import project as proj
    from curate.review import server
    from curate.review.pull import pull
    from curate.review.push import push
    from curate.settings import load_settings
    from curate.store import fo_store

    t0 = time.perf_counter()
    info = server.serve(home, free_port(), work, timeout=300)
    start_s = time.perf_counter() - t0
    try:
        settings = load_settings()
        token = server.credentials(server.paths(home)).token
        ls = LabelStudio(base_url=info["url"], api_key=token.reveal())

        t0 = time.perf_counter()
        pushed = push(settings, f"bench_review_{stamp}", 0.9, None, batch_size=100)
        push_s = time.perf_counter() - t0

        # Baseline: the same payloads, the same batches, straight into a scratch project.
        ds = fo_store.load_dataset(f"bench_review_{stamp}", create=False)
        uids, paths = ds.values("sample_uid"), ds.values("filepath")
        payloads = [proj.task_payload(u, "/data/local-files/?d=" + os.path.relpath(p, work), "happy", "sad", 0.5, "low_confidence", "m")
                    for u, p in zip(uids, paths)]
        scratch = ls.projects.create(title="bench scratch", label_config=proj.label_config()).id
        t0 = time.perf_counter()
        for i in range(0, len(payloads), 100):
            ls.projects.import_tasks(id=scratch, request=payloads[i : i + 100], return_task_ids=True)
        bare_push_s = time.perf_counter() - t0

        project = pushed["project"]
        tasks = list(ls.tasks.list(project=project, fields="all"))
        for k, task in enumerate(tasks):
            if k % 10 == 9:
                ls.annotations.create(id=task.id, result=[], was_cancelled=True)
            else:
                ls.annotations.create(id=task.id, result=proj.choice_result(task.data["model_label"] if k % 3 else "neutral"))

        t0 = time.perf_counter()
        first = pull(settings, f"bench_review_{stamp}")
        pull_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = pull(settings, f"bench_review_{stamp}")
        repull_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        listed = list(ls.tasks.list(project=project, fields="all"))
        bare_list_s = time.perf_counter() - t0

        remote = dataclasses.replace(settings, label_studio_url=info["url"], label_studio_api_key=token)
        t0 = time.perf_counter()
        uploaded = push(remote, f"bench_review_up_{stamp}", 0.9, None, batch_size=100)
        upload_s = time.perf_counter() - t0
    finally:
        server.stop(home)
    assert pushed["pushed"] == n and first["new_human_labels"] == n - n // 10 and again["changed"] == 0 and len(listed) == n
    assert uploaded["pushed"] == n_up and uploaded["images"]["upload"] == n_up

    data = {"images": n, "server_start_s": start_s, "push_s": push_s, "bare_import_s": bare_push_s, "pull_s": pull_s, "repull_noop_s": repull_s,
            "bare_list_s": bare_list_s, "upload_push_s": upload_s, "decisions": first["new_human_labels"], "skipped": first["skipped"]}
    md = f"""## review (Label Studio round trip, {n} real FER2013 test faces, embedded server on loopback)

| step | curate | baseline (bare SDK) | ratio |
|---|---|---|---|
| push, local files ({n} tasks, batches of 100) | {push_s:.1f} s ({n / push_s:.0f} tasks/s) | import only: {bare_push_s:.1f} s ({n / bare_push_s:.0f} tasks/s) | {bare_push_s / push_s:.2f} |
| pull, {first['new_human_labels']} decisions + {first['skipped']} skips | {pull_s:.1f} s ({n / pull_s:.0f} tasks/s) | list tasks: {bare_list_s:.1f} s | {bare_list_s / pull_s:.2f} |
| re-pull, nothing changed | {repull_s:.1f} s | list tasks: {bare_list_s:.1f} s | {bare_list_s / repull_s:.2f} |
| push, upload mode (server by URL) | {upload_s:.1f} s ({n_up / upload_s:.0f} tasks/s) | local-files push: {push_s:.1f} s | {push_s / upload_s:.2f} |

Ratio = baseline time / curate time (1.0 = curate adds nothing). First server start (fresh data dir, migrations included): {start_s:.0f} s.
"""
    write_section("review", md, data)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
