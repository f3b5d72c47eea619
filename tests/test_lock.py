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
