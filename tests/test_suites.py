"""What runs where: the default suite holds no PostgreSQL test, and every test is in the default set or the slow set.

README ("Development") promises this and CI (.ci/run) relies on it: `make test` runs `-m 'not slow'`, then CI
runs `-m slow`. Five PostgreSQL variants once ran in the default suite, unmarked.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO


def _collected(marker: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, "tests"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode in (0, 5), proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


def _params(test_id: str) -> str:
    """The parameter part of a test id (``test_x[postgresql]`` -> ``postgresql``)."""
    return test_id.partition("[")[2].lower()


@pytest.mark.slow  # three collections of the whole suite (~40 s); CI runs it (.ci/run), which is where the split matters
def test_the_default_suite_holds_no_postgresql_variant_and_the_two_sets_cover_everything() -> None:
    default, slow, everything = _collected("not slow"), _collected("slow"), _collected("")
    assert len(everything) > 150, "collection found too few tests to prove anything"
    on_postgres = sorted(t for t in default if "postgres" in _params(t))
    assert not on_postgres, f"PostgreSQL variants in the default suite: {on_postgres}"
    assert not default & slow
    assert default | slow == everything
    # the slow set really holds the PostgreSQL variants (the check above is not vacuous)
    assert sum("postgres" in _params(t) for t in slow) >= 10
