"""Docs as tests: every command in the README's command reference runs with its default options.

The test reads the reference table, turns each documented synopsis into the command a new user
types first (optional ``[...]`` parts dropped, so every option takes its default), binds the
placeholders (``ROOT``, ``CKPT``, ...) to a small generated dataset and runs them through bash, in
the order a user would, against a real ledger, FiftyOne and the embedded Label Studio. A command
documented without a binding here, or a binding for a command the README no longer documents,
fails the test: the README and this list cannot drift apart silently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests import builders
from tests.helpers import REPO, read_app_banner, sql_rows

DEFAULT_DATASETS = ("fer2013", "affectnet", "ckplus", "rafdb", "folder")


def documented_commands(readme: str) -> list[str]:
    """Each synopsis of the command table with its optional parts dropped: the defaults-only command."""
    table = readme.split("## Commands", 1)[1].split("\n\n| command |", 1)[1].split("\n\n", 1)[0]
    commands = []
    for row in table.splitlines():
        if not row.startswith("| `curate"):
            continue
        first_cell = re.split(r"(?<!\\) \| ", row[2:], maxsplit=1)[0]
        spans = re.findall(r"`([^`]+)`", first_cell)
        group = " ".join(spans[0].split()[:2])  # `curate db upgrade` / `downgrade`: the rest are subcommands
        for i, span in enumerate(spans):
            text = span if i == 0 else f"{group} {span}"
            bare = re.sub(r"\s*\[[^\]]*\]", "", text).replace("\\|", "|")
            commands.append(" ".join(bare.split()))
    return commands


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.timeout(1800)  # defaults include a 10-epoch ResNet-50 teacher (2 fold models) on 42 faces: minutes on 2 cores
def test_every_documented_command_runs_with_its_defaults(tmp_path: Path, curate_home: Path, label_studio_template: Path) -> None:  # noqa: PLR0915
    from curate.store.fo_store import fo

    taken = [name for name in DEFAULT_DATASETS if name in fo().list_datasets()]
    if taken:  # only ever the session's own throwaway database (conftest); never touch someone's datasets
        pytest.fail(f"FiftyOne datasets {taken} exist already: this test needs the default names free")
    for port in (8080, 5151):
        if not _port_free(port):
            pytest.fail(f"port {port} (a documented default) is busy on this machine")

    data = tmp_path / "data"
    fer = builders.fer2013_folders(data / "fer2013", per_class=6)
    roots = {"affectnet": builders.affectnet_original(data / "affectnet").root, "ckplus": builders.ckplus(data / "ckplus").root,
             "rafdb": builders.rafdb(data / "rafdb" / "RAF").root, "folder": builders.folder_unlabeled(data / "folder").root}
    bin_dir = str(Path(os.sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FER2013_ROOT": str(fer.root)}
    summaries: dict[str, dict] = {}
    seconds: dict[str, float] = {}  # per command, in every failure message: which one is slow or stuck

    def run(command: str, **bind: str) -> dict:
        line = command
        for placeholder, value in sorted(bind.items(), key=lambda kv: -len(kv[0])):  # CKPT_A before CKPT
            line = re.sub(rf"\b{placeholder}\b", value, line)
        assert not [t for t in line.split() if re.fullmatch(r"[A-Z][A-Z_]*", t)], f"unbound placeholder in {line!r}"
        started = time.monotonic()
        try:
            proc = subprocess.run(["bash", "-c", f"{line} --json"], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
        except subprocess.TimeoutExpired:
            pytest.fail(f"README command ran over 900 s: {line}; earlier commands took {seconds}")
        seconds[command] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"README command failed: {line}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["ok"] is True, summary
        summaries[command] = summary
        return summary

    def run_app(command: str) -> None:
        """The App blocks until stopped: wait for its URL, then stop it as a service manager would."""
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
        try:
            banner = read_app_banner(proc)
            assert "http://127.0.0.1:5151/datasets/fer2013" in banner, banner
        finally:
            proc.send_signal(signal.SIGTERM)
            rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0 and "FiftyOne App stopped" in rest, rest
        summaries[command] = {"ok": True}

    documented = documented_commands((REPO / "README.md").read_text())
    try:
        run("curate db upgrade")
        assert run("curate db current")["revision"]
        # The main job starts the embedded Label Studio itself (from the tests' migrated copy, to save its first start).
        shutil.copytree(label_studio_template, curate_home / "label-studio", ignore=shutil.ignore_patterns("server.json", "server.log"))
        first = run("curate run WORKFLOW", WORKFLOW="workflows/fer2013.yaml")
        assert first["stages"]["1:ingest"]["summary"]["ingested"] == len(fer.expected)
        assert first["status"] == "waiting" and first["waiting"]["pending"] > 0, "the loop stops at the wait with tasks queued"
        assert Path(first["report"]).is_file()
        assert run("curate ingest fer2013 PATH", PATH=str(fer.root))["already_present"] == len(fer.expected)
        for kind, root in roots.items():
            s = run(f"curate ingest {kind} ROOT", ROOT=str(root))
            assert s["dataset"] == kind and s["ingested"] > 0 and s["seen"] == s["ingested"] + sum(s["rejected"].values())
        assert run("curate quality")["samples"] == len(fer.expected)
        assert run("curate status")["datasets"]

        teacher = run("curate teacher train")
        assert teacher["arch"] == "resnet50" and teacher["oof"]["method"] == "cross" and Path(teacher["checkpoint"]).is_file()
        assert run("curate teacher import CKPT", CKPT=teacher["checkpoint"])["oof_samples_stored"] > 0
        manifest = tmp_path / "manifest.csv"
        run("curate manifest export --out FILE", FILE=str(manifest))
        assert len(manifest.read_text().splitlines()) == len(fer.expected) + 1
        assert run("curate prelabel")["samples"] == len(fer.expected)
        assert "probability_quality" in run("curate errors")
        retrain = run("curate retrain")
        best = Path(retrain["best_checkpoint"])
        assert json.loads(best.with_suffix(".json").read_text())["arch"] == "mobilenetv2_100"
        assert run("curate export CKPT --format onnx", CKPT=str(best))["real_images"] is True
        epochs = sorted(best.parent.glob("epoch-*.safetensors"))
        assert run("curate compare CKPT_A CKPT_B", CKPT_A=str(epochs[0]), CKPT_B=str(epochs[-1]))["n"] > 0

        assert run("curate labelstudio serve --data-root DIR", DIR=str(fer.root))["url"] == "http://127.0.0.1:8080"
        assert run("curate labelstudio status")["running"] is True
        pushed = run("curate review push")
        in_review = pushed["pushed"] + pushed["already_in_review"]
        assert in_review > 0
        assert sql_rows(f"sqlite:///{curate_home / 'curate.db'}", "SELECT count(*) FROM review_tasks") == [(in_review,)]
        run("curate review pull")
        assert run("curate review status")["tasks"] == in_review
        run("curate labelstudio stop")
        assert _port_free(8080)

        report = run("curate report")
        assert Path(report["report"]).is_file() and report["checkpoints"] >= 2
        run_app("curate app")
        assert run("curate db downgrade --yes")["revision"] != summaries["curate db current"]["revision"]
        run("curate db upgrade")
    finally:
        subprocess.run(["bash", "-c", "curate labelstudio stop"], capture_output=True, env=env, timeout=60)
        for name in DEFAULT_DATASETS:
            if name in fo().list_datasets():
                fo().delete_dataset(name)
    assert sorted(summaries) == sorted(documented), "every documented command runs here, and only those"
    print("seconds per README command:", json.dumps(dict(sorted(seconds.items(), key=lambda kv: -kv[1]))))
