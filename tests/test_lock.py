"""The committed lock and pyproject.toml agree: every dependency is pinned, to a version its range allows."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock: {line!r} is not an exact pin"
        key = canonicalize_name(name.split("[")[0])
        assert key not in pins, f"requirements.lock pins {name} twice"
        pins[key] = version.strip()
    return pins


def test_every_dependency_is_pinned_in_the_lock_within_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pins = _lock()
    problems = []
    for req in wanted:
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name}: not in requirements.lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: lock has {version}, pyproject.toml wants {req.specifier}")
    assert not problems, "requirements.lock disagrees with pyproject.toml (regenerate it): " + "; ".join(problems)


def test_the_label_studio_release_is_pinned() -> None:
    from curate.review.server import LABEL_STUDIO_VERSION

    assert LABEL_STUDIO_VERSION.count(".") == 2 and all(p.isdigit() for p in LABEL_STUDIO_VERSION.split("."))
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert 'label-studio==$ls_version' in setup and "-c requirements.lock" in setup


def test_make_run_builds_label_studio_where_the_workflow_looks_for_it(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """scripts/setup.sh --label-studio installs the review server alongside the project's venv; the path it computes in
    bash must be the one curate/review/server.py would install to, or the workflow would install it a second time."""
    import subprocess
    from pathlib import Path

    from curate.review import server
    from curate.settings import Settings

    line = next(x for x in (REPO / "scripts" / "setup.sh").read_text().splitlines() if x.startswith("run_ls_venv="))
    for env in ({"HOME": str(tmp_path)}, {"HOME": str(tmp_path), "CURATE_HOME": str(tmp_path / "elsewhere")},
                {"HOME": str(tmp_path), "CURATE_LABEL_STUDIO_VENV": str(tmp_path / "shared-ls")}):
        bash = subprocess.run(["bash", "-c", f'{line}; echo "$run_ls_venv"'], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)
        for name in ("HOME", "CURATE_HOME", "CURATE_LABEL_STUDIO_VENV"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        home = Path(env["CURATE_HOME"]) if "CURATE_HOME" in env else Settings().home
        assert bash.stdout.strip() == str(server.paths(home).venv), env
