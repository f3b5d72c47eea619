"""`curate run`: stages in order, recorded in workflow_runs, resumed after a stop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import builders
from tests.helpers import last_json, run_cli, sql_rows


def _workflow(tmp_path: Path, name: str) -> Path:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        f"name: {name}\n"
        f"settings:\n  dataset: {name}\n  blur_max: 0.3\n"
        "stages:\n"
        "  - stage: ingest\n    kind: fer2013\n    root: ${WF_DATA_ROOT:-data}\n"
        "  - stage: quality\n"
    )
    return wf


def _model_workflow(tmp_path: Path, name: str, model_stages: str) -> Path:
    """A workflow over 42 generated FER2013 faces (filters off, CPU): ingest and quality, then ``model_stages``."""
    builders.fer2013_folders(tmp_path / "data", per_class=3)
    wf = tmp_path / f"{name}.yaml"
    wf.write_text(
        f"name: {name}\n"
        f"settings: {{dataset: {name}, blur_max: 1.0, occlusion_max: 1.0, batch_size: 8, device: cpu}}\n"
        "stages:\n"
        "  - {stage: ingest, kind: fer2013, root: data}\n"
        "  - {stage: quality}\n" + model_stages
    )
    return wf


def test_run_resume_and_force(tmp_path: Path, ledger_db: str) -> None:
    builders.fer2013_folders(tmp_path / "data", per_class=1)
    wf = _workflow(tmp_path, f"wf_{tmp_path.name[-12:]}")
    first = last_json(run_cli("run", str(wf), "--json"))
    assert [s["status"] for s in first["stages"].values()] == ["done", "done"]
    ingest = first["stages"]["1:ingest"]["summary"]
    assert ingest["ingested"] == 14 and ingest["seen"] == 14
    assert first["stages"]["2:quality"]["summary"]["samples"] == 14
    again = last_json(run_cli("run", str(wf), "--json"))
    assert again["resumed_stages"] == ["1:ingest", "2:quality"] and again["run_id"] != first["run_id"]
    forced = last_json(run_cli("run", str(wf), "--force", "--json"))
    assert forced["resumed_stages"] == [] and forced["stages"]["1:ingest"]["summary"]["already_present"] == 14
    assert sql_rows(ledger_db, "SELECT status FROM workflow_runs ORDER BY id") == [("done",)] * 3


def test_failed_stage_is_recorded_and_reported_in_one_line(tmp_path: Path, curate_home: Path) -> None:
    wf = _workflow(tmp_path, "wf_missing")
    proc = run_cli("run", str(wf), "--json", env={"WF_DATA_ROOT": str(tmp_path / "nowhere")}, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "nowhere" in errors[0] and proc.stderr.splitlines()[-1] == errors[0]
    assert sql_rows(f"sqlite:///{curate_home / 'curate.db'}", "SELECT status FROM workflow_runs") == [("failed",)]


def test_unknown_stage_is_refused(tmp_path: Path, curate_home: Path) -> None:
    wf = tmp_path / "bad.yaml"
    wf.write_text("stages:\n  - stage: teleport\n")
    proc = run_cli("run", str(wf), check=False)
    assert proc.returncode == 2 and "teleport" in proc.stderr


def test_each_stage_prints_what_it_did_as_it_ends(tmp_path: Path, curate_home: Path) -> None:
    """The stage's own summary lines appear when it finishes, before the next stage starts, not only at the end."""
    builders.fer2013_folders(tmp_path / "data", per_class=1)
    wf = _workflow(tmp_path, f"wf_lines_{tmp_path.name[-10:]}")
    out = run_cli("run", str(wf)).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    start_quality = lines.index("2:quality: running")
    ingest_done = next(i for i, line in enumerate(lines) if line.startswith("1:ingest: done in "))
    assert ingest_done < start_quality
    assert any("seen 14, ingested 14" in line for line in lines[ingest_done:start_quality]), lines
    quality_done = next(i for i, line in enumerate(lines) if line.startswith("2:quality: done in "))
    assert quality_done > start_quality and "samples in 'curated'" in lines[quality_done + 1], lines


def test_run_from_a_stage_reruns_it_and_what_follows_and_resumes_what_comes_before(tmp_path: Path, curate_home: Path) -> None:
    builders.fer2013_folders(tmp_path / "data", per_class=1)
    wf = _workflow(tmp_path, f"wf_from_{tmp_path.name[-10:]}")
    first = last_json(run_cli("run", str(wf), "--json"))
    assert first["status"] == "done" and first["resumed_stages"] == []
    again = last_json(run_cli("run", str(wf), "--from", "quality", "--json"))
    assert again["resumed_stages"] == ["1:ingest"] and again["stages"]["2:quality"]["status"] == "done"
    # The re-run quality stage really ran now: its summary is this run's, recorded under this run's id.
    stages = dict(sql_rows(f"sqlite:///{curate_home / 'curate.db'}", "SELECT id, stages FROM workflow_runs"))
    assert len(stages) == 2 and again["stages"]["2:quality"]["summary"]["samples"] == 14
    refused = run_cli("run", str(wf), "--from", "retrain", check=False)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2 and len(lines) == 1 and "--from 'retrain' is not a stage of this workflow" in lines[0]


@pytest.mark.parametrize("stage_options,named", [("    blur_maxx: 0.2\n", "no option 'blur_maxx'"),
                                                  ("    blur_max: high\n", "'high' is not a valid float")], ids=["unknown", "mistyped"])
def test_an_unknown_or_mistyped_stage_option_is_refused_before_any_stage_runs(tmp_path: Path, curate_home: Path, stage_options: str,
                                                                                named: str) -> None:
    """A typo in the last stage must not surface after the first stages ran for an hour: nothing runs, nothing is written."""
    _refused_before_any_stage_runs(tmp_path, curate_home, stage_options, named, "stage 2")


def _refused_before_any_stage_runs(tmp_path: Path, curate_home: Path, tail: str, named: str, where: str) -> None:
    """A workflow of ingest, quality and ``tail`` exits 2 with one line naming ``named`` at ``where``; no face is written."""
    builders.fer2013_folders(tmp_path / "data", per_class=1)
    wf = tmp_path / "refused.yaml"
    wf.write_text("name: refused\nstages:\n  - stage: ingest\n    kind: fer2013\n    root: data\n  - stage: quality\n" + tail)
    proc = run_cli("run", str(wf), "--json", check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and named in lines[0] and where in lines[0], proc.stderr
    ledger = curate_home / "curate.db"
    assert not ledger.exists() or sql_rows(f"sqlite:///{ledger}", "SELECT count(*) FROM samples") == [(0,)]


@pytest.mark.parametrize("stage,named", [
    ("  - stage: review_push\n    routing: likelihod\n", "routing 'likelihod' is not one of likelihood, balanced"),
    ("  - stage: retrain\n    optimizer: sgdd\n", "optimizer 'sgdd' is not one of adamw, sgd"),
    ("  - stage: retrain\n    epochs: 0\n", "epochs 0 must be >= 1"),
], ids=["choice", "optimizer", "bounds"])
def test_a_value_outside_an_options_choices_or_bounds_is_refused_before_ingest(tmp_path: Path, curate_home: Path, stage: str,
                                                                              named: str) -> None:
    """Issue 43: choices are declared once (``option(choices=...)``) and checked, like bounds, for a workflow before any
    stage runs, naming the valid values; before, `routing: likelihod` failed only after the teacher had trained."""
    _refused_before_any_stage_runs(tmp_path, curate_home, stage, named, "stage 3")
    cli = run_cli("retrain", "--optimizer", "sgdd", "--dataset", "nothing", check=False)
    cli_lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert cli.returncode == 2 and cli_lines == ["error: --optimizer 'sgdd' is not one of adamw, sgd"], cli.stderr


def test_no_wait_goes_on_past_the_review_wait_and_without_it_the_run_waits(tmp_path: Path, curate_home: Path, label_studio) -> None:  # noqa: ANN001
    """The wait for people ends the run as 'waiting' (the stages after it do not run); --no-wait records how many were
    reviewed and goes on to the end."""
    built = builders.fer2013_folders(tmp_path / "data", per_class=1)
    label_studio(curate_home, built.root)  # the embedded server of this CURATE_HOME, running
    name = f"wf_nowait_{tmp_path.name[-8:]}"
    wf = tmp_path / "wait.yaml"
    wf.write_text(f"name: {name}\nsettings:\n  dataset: {name}\nstages:\n  - stage: ingest\n    kind: fer2013\n    root: data\n"
                  "  - stage: wait_review\n    min_reviewed: 1\n  - stage: quality\n")
    waiting = last_json(run_cli("run", str(wf), "--json"))
    assert waiting["status"] == "waiting" and "3:quality" not in waiting["stages"]
    assert waiting["waiting"]["stage"] == "2:wait_review" and waiting["waiting"]["reviewed_since_wait"] == 0
    went_on = last_json(run_cli("run", str(wf), "--no-wait", "--json"))
    assert went_on["status"] == "done" and went_on["resumed_stages"] == ["1:ingest"]
    wait = went_on["stages"]["2:wait_review"]["summary"]
    assert wait["waited"] is False and "--no-wait: going on with 0 reviewed" in wait["note"]
    assert went_on["stages"]["3:quality"]["summary"]["samples"] == 14
    assert sql_rows(f"sqlite:///{curate_home / 'curate.db'}", "SELECT status FROM workflow_runs ORDER BY id") == [("waiting",), ("done",)]


def test_the_loop_chains_through_prelabel_and_distilled_retrain(tmp_path: Path, ledger_db: str) -> None:
    name = f"loop_{tmp_path.name[-10:]}"
    wf = _model_workflow(tmp_path, name, "  - {stage: teacher, arch: resnet18, image_size: 32, epochs: 1, max_steps_per_epoch: 1, oof: none}\n"
                                         "  - {stage: prelabel}\n"
                                         "  - {stage: retrain, arch: mobilenetv2_050, image_size: 32, epochs: 1, max_steps_per_epoch: 1, distill: true}\n")
    result = last_json(run_cli("run", str(wf), "--json"))
    stages = result["stages"]
    assert [s["status"] for s in stages.values()] == ["done"] * 5
    assert stages["4:prelabel"]["summary"]["samples"] == 42
    assert stages["5:retrain"]["summary"]["distill"] is True and Path(stages["5:retrain"]["summary"]["best_checkpoint"]).is_file()
    kinds = dict(sql_rows(ledger_db, "SELECT kind, count(*) FROM model_runs GROUP BY kind"))
    assert kinds == {"teacher-train": 1, "prelabel": 1, "retrain": 1}


@pytest.mark.slow  # ~60 s: two teachers; CI runs it (.ci/run)
def test_a_teacher_round_retrains_on_the_labels_people_fixed_and_routes_by_the_new_teacher(tmp_path: Path, ledger_db: str) -> None:
    """README's teacher round (`curate review pull && curate run WORKFLOW --from teacher`, measured in bench/rounds.py):
    the new teacher learns from the human labels the pull recorded, and pre-labels and the error scan follow it."""
    from curate.models.manifest import training_rows
    from curate.review.records import sample_ids
    from curate.store.sql import ledger, session

    name = f"round_{tmp_path.name[-10:]}"
    wf = _model_workflow(tmp_path, name, "  - {stage: teacher, arch: fer_cnn_v2, epochs: 1, max_steps_per_epoch: 1}\n"
                                         "  - {stage: prelabel}\n  - {stage: errors}\n")
    first = last_json(run_cli("run", str(wf), "--json"))
    assert first["status"] == "done"
    train, _, _ = training_rows(name, ledger_db, 0)
    fixed = {row.uid: ("sad" if row.label != "sad" else "happy") for row in train[:3]}
    with session.session_scope(ledger_db) as db:  # what `curate review pull` records for three corrected faces
        ids = {uid: sid for uid, sid in sample_ids(db, ledger.require_dataset(db, name).id).items() if uid in fixed}
        ledger.append_label_events(db, [{"sample_id": ids[uid], "label": label, "source": "human", "actor": "reviewer@example.org",
                                         "dedup_key": f"test-fix:{uid}"} for uid, label in fixed.items()])
    newest_event = sql_rows(ledger_db, "SELECT max(id) FROM label_events")[0][0]

    again = last_json(run_cli("run", str(wf), "--from", "teacher", "--json"))
    assert again["resumed_stages"] == ["1:ingest", "2:quality"]
    old, new = first["stages"]["3:teacher"]["summary"]["checkpoint"], again["stages"]["3:teacher"]["summary"]["checkpoint"]
    assert new != old and Path(new).is_file()
    snapshots = dict(sql_rows(ledger_db, "SELECT path, label_snapshot_id FROM checkpoints"))
    assert snapshots[new] == newest_event and snapshots[old] < newest_event, "the new teacher's recorded labels include the fixes"
    retrained_on = {row.uid: row.label for row in training_rows(name, ledger_db, 0)[0]}
    assert all(retrained_on[uid] == label for uid, label in fixed.items()), "the teacher stage trains on the corrected labels"
    assert again["stages"]["4:prelabel"]["summary"]["checkpoint"] == new, "pre-labels (and the next push's routing) follow the new teacher"
    assert again["stages"]["5:errors"]["status"] == "done"
    assert "next_round" not in again, "no review stages: nothing to route, no round to suggest"


@pytest.mark.slow  # ~30 s; CI runs it (.ci/run)
def test_a_failed_stage_resumes_after_the_last_finished_one_and_another_data_root_starts_over(tmp_path: Path, ledger_db: str) -> None:
    """Stage 2 fails, its cause is fixed (outside the YAML), the re-run resumes after stage 1 only;
    the same YAML pointed at another root by ${VAR} re-runs stage 1 instead of trusting the old one."""
    builders.fer2013_folders(tmp_path / "data", per_class=1)
    builders.fer2013_folders(tmp_path / "other", per_class=2)
    name = f"wf_fail_{tmp_path.name[-10:]}"
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        f"name: {name}\nsettings:\n  dataset: {name}\n"
        "stages:\n"
        "  - stage: ingest\n    kind: fer2013\n    root: ${WF_DATA_ROOT:-data}\n"
        "  - stage: ingest\n    kind: fer2013\n    root: ${WF_EXTRA_ROOT:-extra}\n"
        "  - stage: quality\n"
    )
    failed = run_cli("run", str(wf), "--json", check=False)
    assert failed.returncode == 2 and "extra" in failed.stderr.splitlines()[-1]
    builders.fer2013_folders(tmp_path / "extra", per_class=1)  # the fix: the missing folder now exists
    fixed = last_json(run_cli("run", str(wf), "--json"))
    assert fixed["resumed_stages"] == ["1:ingest"] and fixed["stages"]["2:ingest"]["status"] == "done"
    elsewhere = last_json(run_cli("run", str(wf), "--json", env={"WF_DATA_ROOT": str(tmp_path / "other")}))
    assert elsewhere["resumed_stages"] == []
    assert elsewhere["stages"]["1:ingest"]["summary"]["seen"] == 28  # the other root was really read
    assert sql_rows(ledger_db, "SELECT status FROM workflow_runs ORDER BY id") == [("failed",), ("done",), ("done",)]


def _loop_workflow(tmp_path: Path, name: str, port: int) -> Path:
    """The shape of workflows/fer2013.yaml at test size: every stage of the loop, through a real Label Studio."""
    wf = tmp_path / "loop.yaml"
    tiny = "image_size: 32, epochs: 1, max_steps_per_epoch: 1"
    wf.write_text(
        f"name: {name}\n"
        f"settings: {{dataset: {name}, blur_max: 1.0, occlusion_max: 1.0, batch_size: 8, device: cpu}}\n"
        "stages:\n"
        "  - {stage: ingest, kind: fer2013, root: data}\n"
        "  - {stage: quality}\n"
        f"  - {{stage: teacher, arch: resnet18, {tiny}}}\n"
        "  - {stage: prelabel}\n"
        "  - {stage: errors}\n"
        f"  - {{stage: labelstudio, port: {port}}}\n"
        "  - {stage: review_push, limit: 6}\n"
        "  - {stage: wait_review, min_reviewed: 2}\n"
        "  - {stage: review_pull}\n"
        "  - {stage: retrain, arch: mobilenetv2_050, image_size: 32, epochs: 3, max_steps_per_epoch: 2, distill: true}\n"
        "  - {stage: export, checkpoint: best, int8: true, limit: 16}\n"
        "  - {stage: compare, checkpoint_a: previous, checkpoint_b: best}\n"
        "  - {stage: errors, checkpoint: best}\n"
        "  - {stage: report}\n"
    )
    return wf


@pytest.mark.slow  # ~100 s: the whole loop through a real Label Studio; CI runs it (.ci/run)
def test_the_loop_waits_for_people_in_label_studio_then_finishes_and_resumes_after_kill_9(  # noqa: PLR0915
        tmp_path: Path, curate_home: Path, label_studio_template: Path) -> None:
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import uuid

    from label_studio_sdk import LabelStudio

    from curate.review import server
    from tests.helpers import free_port, wait_for

    builders.fer2013_folders(tmp_path / "data", per_class=3)
    name = f"wl_{uuid.uuid4().hex[:10]}"  # FiftyOne datasets outlive pytest's tmp dirs when a mongod was already running
    from PIL import Image, ImageFilter

    for path in sorted((tmp_path / "data" / "train").rglob("*.jpg"))[:4]:  # four blurry faces for the report's blur section
        Image.open(path).filter(ImageFilter.GaussianBlur(3)).save(path)
    url = f"sqlite:///{curate_home / 'curate.db'}"
    wf = _loop_workflow(tmp_path, name, free_port())
    shutil.copytree(label_studio_template, curate_home / "label-studio", ignore=shutil.ignore_patterns("server.json", "server.log"))
    try:
        first = run_cli("run", str(wf), "--json")
        waiting = last_json(first)
        assert waiting["status"] == "waiting" and waiting["waiting"]["stage"] == "8:wait_review"
        assert [s["status"] for s in waiting["stages"].values()] == ["done"] * 7 + ["waiting"]
        assert waiting["stages"]["7:review_push"]["summary"]["pushed"] == 6 and waiting["waiting"]["pending"] == 6
        # What a person needs to go on: where, how to log in, and the command.
        assert waiting["waiting"]["url"].startswith("http://127.0.0.1:") and "credentials.json" in waiting["waiting"]["login"]
        assert f"curate run {wf}" in first.stderr and "Waiting for review" in first.stderr
        assert sql_rows(url, "SELECT status FROM workflow_runs") == [("waiting",)]

        again = last_json(run_cli("run", str(wf), "--json"))  # nobody reviewed yet: says so and waits again
        assert again["status"] == "waiting" and again["waiting"]["reviewed_since_wait"] == 0
        assert again["resumed_stages"] == [f"{i}:{s}" for i, s in enumerate(
            ["ingest", "quality", "teacher", "prelabel", "errors", "labelstudio", "review_push"], 1)]

        # A reviewer answers two tasks through the API, as the browser does: one keeps the label, one changes it.
        creds = server.credentials(server.paths(curate_home))
        ls = LabelStudio(base_url=waiting["waiting"]["url"], api_key=creds.token.reveal())
        project = next(p.id for p in ls.projects.list() if p.title == f"curate: {name}")
        tasks = list(ls.tasks.list(project=project, fields="all"))
        keep, change = tasks[0], tasks[1]
        new_label = "surprise" if keep.data["dataset_label"] != "surprise" and change.data["dataset_label"] != "surprise" else "fear"
        for task, label in ((keep, keep.data["dataset_label"]), (change, new_label)):
            ls.annotations.create(id=task.id, result=[{"from_name": "emotion", "to_name": "image", "type": "choices",
                                                       "value": {"choices": [label]}}])

        # The continuation is killed (-9) in the retrain stage; the next run resumes at that stage.
        proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "run", str(wf), "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=os.environ.copy(), start_new_session=True)
        try:
            assert wait_for(lambda: sql_rows(url, "SELECT count(*) FROM model_runs WHERE kind='retrain'")[0][0] > 0, timeout=240)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        assert sql_rows(url, "SELECT status FROM workflow_runs ORDER BY id")[-1] == ("running",)

        done = last_json(run_cli("run", str(wf), "--json"))
        assert done["status"] == "done", done
        assert done["next_round"] == f"curate review pull && curate run {wf} --from teacher", "a finished loop names its teacher round"
        assert done["resumed_stages"] == sorted(f"{i}:{s}" for i, s in enumerate(
            ["ingest", "quality", "teacher", "prelabel", "errors", "labelstudio", "review_push", "wait_review", "review_pull"], 1))
        stages = {k: v["summary"] for k, v in done["stages"].items()}
        assert stages["8:wait_review"]["reviewed_since_wait"] == 2 and stages["9:review_pull"]["project"] is not None
        assert stages["10:retrain"]["distill"] is True
        best = Path(stages["10:retrain"]["best_checkpoint"])
        exported = Path(stages["11:export"]["checkpoint"])  # 'best' resolved to this retrain's best epoch (best.safetensors is its copy)
        assert exported.parent == best.parent and exported.read_bytes() == best.read_bytes()
        assert Path(stages["11:export"]["onnx_int8"]).is_file()
        assert "first" in stages["12:compare"]["skipped"]
        assert stages["13:errors"]["checked_by_checkpoint"] > 0
        assert Path(done["report"]).is_file() and done["report"] == stages["14:report"]["report"]
        humans = dict(sql_rows(url, "SELECT s.uid, cl.label FROM current_labels cl JOIN samples s ON s.id = cl.sample_id "
                                    "WHERE cl.source = 'human'"))
        assert humans == {keep.data["sample_id"]: keep.data["dataset_label"], change.data["sample_id"]: new_label}
        assert sql_rows(url, "SELECT status FROM workflow_runs ORDER BY id")[-1] == ("done",)

        # Tighter thresholds remove some faces, so every section of the report has something to show.
        occlusion = sorted(v for (v,) in sql_rows(url, "SELECT occlusion FROM samples"))
        run_cli("quality", "--dataset", name, "--blur-max", "0.0", "--occlusion-max", str(occlusion[-4]))
        report = last_json(run_cli("report", "--dataset", name, "--json"))
        assert report["removed_blur"] >= 3 and report["removed_occlusion"] >= 3 and report["checkpoints"] >= 2
        _look_at_the_report(Path(report["report"]))

        # The export's figures stay with the checkpoint it exported, for the report's Models table (issue 39).
        (metrics,) = [json.loads(m) if isinstance(m, str) else m for (m,) in sql_rows(
            url, f"SELECT metrics FROM checkpoints WHERE path = '{exported.resolve()}'")]
        assert metrics["export"]["size_int8_bytes"] == Path(stages["11:export"]["onnx_int8"]).stat().st_size
        assert metrics["export"]["latency_ms_int8"] > 0 and metrics["export"]["accuracy_faces"] == stages["11:export"]["accuracy_faces"]
        assert metrics["test"]["n"] == stages["10:retrain"]["test_metrics"]["n"] > 0, "the student's test figures are kept too"

        # Two more reviews (the wait's min_reviewed), then the same command again (issue 39: a third `make run`): the
        # finished loop starts its next round at the wait, which counts the reviews made since, and the new student is
        # compared with the first round's.
        for task in tasks[2:4]:
            ls.annotations.create(id=task.id, result=[{"from_name": "emotion", "to_name": "image", "type": "choices",
                                                       "value": {"choices": [task.data["dataset_label"]]}}])
        next_round = run_cli("run", str(wf), "--json")
        second = last_json(next_round)
        assert second["status"] == "done", second
        assert "the next one starts at the review wait" in next_round.stderr
        assert second["resumed_stages"] == [f"{i}:{s}" for i, s in enumerate(
            ["ingest", "quality", "teacher", "prelabel", "errors", "labelstudio", "review_push"], 1)]
        rounds = {k: v["summary"] for k, v in second["stages"].items()}
        assert rounds["8:wait_review"]["reviewed_since_wait"] == 2 and rounds["8:wait_review"]["pulled_new_human_labels"] == 2
        compared = rounds["12:compare"]
        assert not compared.get("skipped"), compared
        assert compared["a"] == str(exported) and compared["b"] == rounds["11:export"]["checkpoint"] != str(exported)
        assert compared["n"] == rounds["10:retrain"]["test_metrics"]["n"] > 0 and compared["split"] == "test"
    finally:
        server.stop(curate_home)


def _look_at_the_report(report: Path) -> None:
    """Headless Chromium opens the report as a person would: every section there, every thumbnail decoded."""
    from tests.helpers import REPO, headless_chromium

    chromium, sync_playwright = headless_chromium()
    shot = REPO / "artifacts" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(report.as_uri())
            sections = page.eval_on_selector_all("h2", "hs => hs.map(h => h.innerText)")
            images = page.eval_on_selector_all("img", "is => is.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            matrices = page.eval_on_selector_all("table.cm", "ts => ts.length")
            removed = page.eval_on_selector_all("#removed ~ .faces", "fs => fs.map(f => f.querySelectorAll('img').length)")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert sections == ["Faces per class", "Removed for quality", "Duplicates and leakage", "Review", "Models", "Error clusters"]
    assert len(images) >= 10 and all(ok and w > 0 and h > 0 for ok, w, h in images), images
    assert matrices >= 2, "a confusion matrix per checkpoint (teacher and the retrain's best)"
    assert removed[:2] and all(n >= 3 for n in removed[:2]), "thumbnails of faces removed for blur and for occlusion"


def test_a_password_in_a_stage_summary_is_masked_before_workflow_runs_stores_it(sqlite_url: str) -> None:
    """Issue 31: the labelstudio stage's summary carries LABEL_STUDIO_URL, which may hold a password; workflow_runs
    rows are readable by anyone who can read the ledger and outlive the run."""
    from curate import workflow
    from curate.store.sql import session
    from curate.store.sql.models import WorkflowRun

    session.upgrade(sqlite_url)
    with session.session_scope(sqlite_url) as db:
        run = WorkflowRun(workflow="w", path="/w.yaml", config_hash="k", status="running", stages={})
        db.add(run)
        db.flush()
        run_id = run.id
    summary = {"url": "http://admin:hunter2-pw@ls.example:8080", "nested": [{"db": "postgresql://u:pg-pw-9@h/db"}], "n": 3}
    workflow._save(sqlite_url, run_id, {"5:labelstudio": {"status": "done", "summary": summary}}, "running")
    stored = str(sql_rows(sqlite_url, "SELECT stages FROM workflow_runs WHERE id = :i", i=run_id))
    assert "hunter2-pw" not in stored and "pg-pw-9" not in stored, stored
    assert "ls.example:8080" in stored and '"n": 3' in stored  # the rest of the summary is kept as it was


def test_run_auto_says_first_which_recipe_it_picked_and_runs_it(tmp_path: Path, curate_home: Path) -> None:
    """Issue 28: `make run` is `curate run auto`: the CPU recipe on a machine without CUDA (this one), the full recipe where
    a GPU is, and its first line says which and how to run the other."""
    import torch

    builders.fer2013_folders(tmp_path / "data", per_class=1)
    (tmp_path / "workflows").mkdir()
    (_workflow(tmp_path, "auto_cpu")).rename(tmp_path / "workflows" / "fer2013.yaml")
    proc = run_cli("run", "auto", "--json", cwd=tmp_path, env={"WF_DATA_ROOT": str(tmp_path / "data")})
    first = next(line for line in (proc.stderr + proc.stdout).splitlines() if line.strip())
    summary = last_json(proc)
    if torch.cuda.is_available():  # pragma: no cover - the CPU CI machine has none
        assert first.startswith("recipe: a CUDA GPU is here") and summary["recipe"] == "workflows/fer2013-full.yaml"
        return
    assert first.startswith("recipe: no CUDA GPU here, so the CPU recipe: workflows/fer2013.yaml"), first
    assert "make run WORKFLOW=workflows/fer2013-full.yaml" in first
    assert summary["recipe"] == "workflows/fer2013.yaml" and summary["workflow"] == "auto_cpu" and summary["status"] == "done"
