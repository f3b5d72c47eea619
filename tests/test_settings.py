"""Settings precedence: defaults < workflow YAML < environment < CLI options."""

from pathlib import Path

import pytest

from curate.secrets import Secret
from curate.settings import SettingsError, load_settings


def _workflow(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(body)
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(environ={})
    assert s.blur_max == 0.3 and s.occlusion_max == 0.4 and s.review_threshold == 0.9
    assert s.home == Path("~/.local/share/curate").expanduser()
    assert s.database_url == f"sqlite:///{s.home / 'curate.db'}"
    assert s.origins["blur_max"] == "default"


@pytest.mark.parametrize("cores,expected", [(1, 1), (2, 1), (16, 15), (None, 1)])
def test_ingest_leaves_a_core_to_its_single_writer_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch, cores: int | None,
                                                                         expected: int) -> None:
    """The writer bounds ingest; a scorer on every core starves it (2 cores: 345 faces/s with 2 workers, 401 with 1)."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert load_settings(environ={}).worker_count == expected
    assert load_settings(environ={"CURATE_WORKERS": "3"}).worker_count == 3


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "settings:\n  blur_max: 0.2\n  occlusion_max: 0.5\n  review_threshold: 0.8\n")
    env = {"CURATE_OCCLUSION_MAX": "0.45", "CURATE_REVIEW_THRESHOLD": "0.7"}
    s = load_settings(workflow=wf, environ=env, cli={"review_threshold": 0.6})
    assert s.blur_max == 0.2 and s.origins["blur_max"] == f"workflow:{wf}"
    assert s.occlusion_max == 0.45 and s.origins["occlusion_max"] == "env:CURATE_OCCLUSION_MAX"
    assert s.review_threshold == 0.6 and s.origins["review_threshold"] == "cli"


def test_cli_none_means_not_given(tmp_path: Path) -> None:
    s = load_settings(environ={"CURATE_BLUR_MAX": "0.25"}, cli={"blur_max": None})
    assert s.blur_max == 0.25


def test_named_environment_variables(tmp_path: Path) -> None:
    env = {
        "CURATE_HOME": str(tmp_path / "h"),
        "CURATE_DB_URL": "postgresql+psycopg://u:pw@db/curate",
        "LABEL_STUDIO_URL": "http://ls:8080",
        "LABEL_STUDIO_API_KEY": "tok-abcdef-123456",
    }
    s = load_settings(environ=env)
    assert s.home == tmp_path / "h"
    assert s.database_url == env["CURATE_DB_URL"]
    assert s.label_studio_url == "http://ls:8080"
    assert isinstance(s.label_studio_api_key, Secret) and s.label_studio_api_key.reveal() == "tok-abcdef-123456"


def test_public_dict_masks_secrets() -> None:
    env = {"CURATE_DB_URL": "postgresql+psycopg://u:hunter2pw@db/curate", "LABEL_STUDIO_API_KEY": "tok-abcdef-123456"}
    shown = str(load_settings(environ=env).public_dict())
    assert "hunter2pw" not in shown and "tok-abcdef-123456" not in shown
    assert "u:********@db" in shown


def test_bad_values_name_their_source(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="env:CURATE_BLUR_MAX"):
        load_settings(environ={"CURATE_BLUR_MAX": "very"})
    with pytest.raises(SettingsError, match="must lie in"):
        load_settings(environ={}, cli={"occlusion_max": 1.5})
    wf = _workflow(tmp_path, "settings:\n  blurr_max: 0.1\n")
    with pytest.raises(SettingsError, match="blurr_max"):
        load_settings(workflow=wf, environ={})


def test_workflow_may_not_carry_secrets(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "settings:\n  label_studio_api_key: abcdefgh\n")
    with pytest.raises(SettingsError, match="secrets do not belong"):
        load_settings(workflow=wf, environ={})


def test_broken_yaml_is_one_line_error(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "settings: [unclosed\n")
    with pytest.raises(SettingsError) as info:
        load_settings(workflow=wf, environ={})
    assert str(wf) in str(info.value) and "\n" not in str(info.value)


def test_dataset_names_cannot_leave_curate_home(curate_home: Path) -> None:
    """Dataset names become folder names under CURATE_HOME (reports, media, checkpoints)."""
    from tests.helpers import run_cli

    for bad in ("..", "../../etc", "a/b", "."):
        proc = run_cli("status", "--dataset", bad, check=False)
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and "dataset=" in lines[0], proc.stderr
    assert run_cli("status", "--dataset", "fer2013_v2.clean-1", check=False).returncode == 0


@pytest.mark.parametrize("setting,value", [("db_url", "postgresql+psycopg://me@127.0.0.1:1/loot"), ("home", "/tmp/elsewhere"),
                                           ("label_studio_url", "http://attacker.example:8080")],
                         ids=["db_url", "home", "label_studio_url"])
def test_a_workflow_file_cannot_move_where_the_data_goes(tmp_path: Path, setting: str, value: str) -> None:
    """A workflow someone hands you must not point your ledger (and its labels) or your review server at theirs."""
    wf = _workflow(tmp_path, f"settings:\n  {setting}: {value}\n")
    with pytest.raises(SettingsError, match=f"{setting} cannot be set in a workflow file") as err:
        load_settings(workflow=wf, environ={})
    assert len(str(err.value).splitlines()) == 1 and value not in str(err.value)


@pytest.mark.parametrize("variable", ["LABEL_STUDIO_API_KEY", "CURATE_DB_URL", "HOME", "AWS_SECRET_ACCESS_KEY"])
def test_a_workflow_reads_only_data_roots_and_curate_variables(tmp_path: Path, curate_home: Path, variable: str) -> None:
    from tests.helpers import run_cli

    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: leak\nstages:\n  - stage: ingest\n    kind: folder\n    root: /x/${{{variable}}}\n")
    proc = run_cli("run", str(wf), env={variable: "s3cret-value-123"}, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and f"${{{variable}}}" in lines[0] and "s3cret-value-123" not in proc.stderr
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: ok\nstages:\n  - stage: quality\n    dataset: ${CURATE_TEST_NAME:-x}\n  - stage: ingest\n    kind: folder\n"
                  "    root: ${FACES_ROOT:-faces}\n")
    from curate.workflow import load_workflow

    assert len(load_workflow(ok)["stages"]) == 2  # *_ROOT and CURATE_* are readable
