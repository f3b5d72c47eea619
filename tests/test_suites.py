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


@pytest.mark.slow  # four collections of the whole suite (~50 s); CI runs it (.ci/run), which is where the split matters
def test_the_default_suite_holds_no_postgresql_variant_and_the_two_sets_cover_everything() -> None:
    default, slow, everything = _collected("not slow"), _collected("slow"), _collected("")
    assert len(everything) > 150, "collection found too few tests to prove anything"
    assert not default & slow
    assert default | slow == everything
    on_postgres = _collected("postgres")
    assert not on_postgres & default, f"PostgreSQL tests in the default suite: {sorted(on_postgres & default)}"
    # and no unmarked variant either: a test that asks for the server by name (request.getfixturevalue) escapes the hook
    unmarked = sorted(t for t in default if "postgres" in t.partition("[")[2].lower())
    assert not unmarked, f"PostgreSQL variants without the postgres marker: {unmarked}"
    # the marker is really on the PostgreSQL variants (the check above is not vacuous)
    assert len(on_postgres) >= 10 and all("postgres" in t.partition("[")[2].lower() or "scale_out" in t for t in on_postgres)
