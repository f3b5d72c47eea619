"""Issue 29's GPU run (bench/gpu_run.sh) resumes step by step: run on the CPU with tiny settings, killed during its
first step and run again, it finishes with the same checkpoints as an uninterrupted run, and leaves in $OUT what
the device tool can bring back (at most 8 files)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import builders
from tests.helpers import REPO, wait_for

pytestmark = pytest.mark.slow  # ~3 min: three tiny runs of the script; CI runs it (.ci/run)


def _env(data: Path, runs: Path) -> dict[str, str]:
    return {**os.environ, "DATA": str(data), "RUNS": str(runs), "OUT": str(runs / "out"), "DEVICE": "cpu", "ARCH": "fer_cnn",
            "BATCH": "8", "TEACHER_EPOCHS": "3", "STUDENT_EPOCHS": "2", "BUDGET_S": "100000", "CROP": "40", "PY": sys.executable,
            "EXTRA": "--max-steps 2 --threads 1"}


def _digests(runs: Path) -> dict[str, str]:
    found = {p.relative_to(runs).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((runs / "runs").rglob("*.safetensors"))}
    assert any(k.endswith("teacher/teacher.safetensors") for k in found) and any(k.endswith("distilled/best.safetensors") for k in found), found
    return found


def test_a_killed_gpu_run_resumes_to_the_checkpoints_of_an_uninterrupted_one(tmp_path: Path) -> None:
    data = builders.fer2013_folders(tmp_path / "fer", per_class=6).root
    script = [str(REPO / "bench" / "gpu_run.sh")]
    whole = subprocess.run(["bash", *script], env=_env(data, tmp_path / "whole"), capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
    out = tmp_path / "whole" / "out"
    returned = sorted(p.name for p in out.iterdir())
    assert len(returned) <= 8 and all(p.stat().st_size < 16 << 20 for p in out.iterdir()), returned  # the device tool's limits
    assert {"models-cpu.md", "models-cpu.json", "teacher-oof-cpu.npz", "gpu-run.log", "command.txt"} <= set(returned), returned

    resumed = tmp_path / "resumed"
    first_epoch = resumed / "runs" / "cpu" / "teacher" / "fold-0" / "state.pt"  # written last, after the epoch's checkpoints
    proc = subprocess.Popen(["bash", *script], env=_env(data, resumed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert wait_for(first_epoch.exists, timeout=600, interval=0.05), "the first step never saved an epoch"
        os.killpg(proc.pid, signal.SIGKILL)  # mid-step: the teacher's first fold model has more to do
    finally:
        proc.wait(timeout=60)
    assert not (resumed / "runs" / "cpu" / "teacher" / "teacher.safetensors").exists(), "the kill landed after the step finished"
    again = subprocess.run(["bash", *script], env=_env(data, resumed), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming after epoch" in again.stdout + again.stderr
    assert _digests(resumed) == _digests(tmp_path / "whole")  # paths relative to each run folder
