"""`curate run`: stages in order, recorded in workflow_runs, resumed after a stop."""

from __future__ import annotations

from pathlib import Path

from tests import builders
from tests.conftest import last_json, run_cli, sql_rows


def _workflow(tmp_path: Path, name: str) -> Path:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        f"name: {name}\n"
        f"settings:\n  dataset: {name}\n  blur_max: 0.3\n"
        "stages:\n"
        "  - stage: ingest\n    kind: fer2013\n    root: ${WF_DATA:-data}\n"
        "  - stage: quality\n"
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
    proc = run_cli("run", str(wf), "--json", env={"WF_DATA": str(tmp_path / "nowhere")}, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "nowhere" in errors[0] and proc.stderr.splitlines()[-1] == errors[0]
    assert sql_rows(f"sqlite:///{curate_home / 'curate.db'}", "SELECT status FROM workflow_runs") == [("failed",)]


def test_unknown_stage_is_refused(tmp_path: Path, curate_home: Path) -> None:
    wf = tmp_path / "bad.yaml"
    wf.write_text("stages:\n  - stage: teleport\n")
    proc = run_cli("run", str(wf), check=False)
    assert proc.returncode == 2 and "teleport" in proc.stderr


def test_the_loop_chains_through_prelabel_and_distilled_retrain(tmp_path: Path, ledger_db: str) -> None:
    builders.fer2013_folders(tmp_path / "data", per_class=3)
    name = f"loop_{tmp_path.name[-10:]}"
    wf = tmp_path / "loop.yaml"
    wf.write_text(
        f"name: {name}\n"
        f"settings: {{dataset: {name}, blur_max: 1.0, occlusion_max: 1.0, batch_size: 8, device: cpu}}\n"
        "stages:\n"
        "  - {stage: ingest, kind: fer2013, root: data}\n"
        "  - {stage: quality}\n"
        "  - {stage: teacher, arch: resnet18, image_size: 32, epochs: 1, max_steps_per_epoch: 1, oof: none}\n"
        "  - {stage: prelabel}\n"
        "  - {stage: retrain, arch: mobilenetv2_050, image_size: 32, epochs: 1, max_steps_per_epoch: 1, distill: true}\n"
    )
    result = last_json(run_cli("run", str(wf), "--json"))
    stages = result["stages"]
    assert [s["status"] for s in stages.values()] == ["done"] * 5
    assert stages["4:prelabel"]["summary"]["samples"] == 42
    assert stages["5:retrain"]["summary"]["distill"] is True and Path(stages["5:retrain"]["summary"]["best_checkpoint"]).is_file()
    kinds = dict(sql_rows(ledger_db, "SELECT kind, count(*) FROM model_runs GROUP BY kind"))
    assert kinds == {"teacher-train": 1, "prelabel": 1, "retrain": 1}


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
        "  - stage: ingest\n    kind: fer2013\n    root: ${WF_DATA:-data}\n"
        "  - stage: ingest\n    kind: fer2013\n    root: ${WF_EXTRA:-extra}\n"
        "  - stage: quality\n"
    )
    failed = run_cli("run", str(wf), "--json", check=False)
    assert failed.returncode == 2 and "extra" in failed.stderr.splitlines()[-1]
    builders.fer2013_folders(tmp_path / "extra", per_class=1)  # the fix: the missing folder now exists
    fixed = last_json(run_cli("run", str(wf), "--json"))
    assert fixed["resumed_stages"] == ["1:ingest"] and fixed["stages"]["2:ingest"]["status"] == "done"
    elsewhere = last_json(run_cli("run", str(wf), "--json", env={"WF_DATA": str(tmp_path / "other")}))
    assert elsewhere["resumed_stages"] == []
    assert elsewhere["stages"]["1:ingest"]["summary"]["seen"] == 28  # the other root was really read
    assert sql_rows(ledger_db, "SELECT status FROM workflow_runs ORDER BY id") == [("failed",), ("done",), ("done",)]
