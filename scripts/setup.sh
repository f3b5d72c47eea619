#!/usr/bin/env bash
# Create the project's virtual environment (default .venv) on a fresh machine, idempotently.
#   scripts/setup.sh [VENV_DIR] [--test] [--label-studio]
# --label-studio (what `make run` passes) installs the review server's own venv at the same time as the project's,
# where the workflow would otherwise install it later: two single-core pip runs overlap on two cores, which took
# ~3 minutes off a fresh `make run` (bench/RESULTS.md "make run"). Its path follows curate/review/server.py:
# CURATE_LABEL_STUDIO_VENV, else $CURATE_HOME/label-studio/venv (CURATE_HOME defaults to ~/.local/share/curate,
# curate/settings.py). A failure here is only a warning: the workflow installs it again and says why if it cannot.
# --test also installs what the test suite talks to: a PostgreSQL server and Chromium (Debian packages)
# when running as root with apt-get, and Label Studio in its own venv. Locally a failed install is a
# warning and those tests skip, saying why; under CI (CI=true) it is an error: CI must not pass by skipping.
# It re-installs only when pyproject.toml or this script changed (hash kept in VENV/.deps-hash).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
with_test=0
with_ls=0
for arg in "$@"; do
  case "$arg" in
    --test) with_test=1 ;;
    --label-studio) with_ls=1 ;;
    *) venv="$arg" ;;
  esac
done

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "error: curate needs Python >= 3.11 (found $($python --version 2>&1))" >&2; exit 2; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

missing_part() {
  if [ "${CI:-}" = true ]; then echo "error: $1; CI needs every real part of the test suite" >&2; exit 1; fi
  echo "warning: $1; those tests will skip" >&2
}

# The Label Studio release the integration tests run against (curate/review/server.py installs the same).
ls_version=$(sed -n 's/^LABEL_STUDIO_VERSION = "\(.*\)"/\1/p' curate/review/server.py)

if [ "$with_test" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages for the tests: ${missing[*]}"
    # A fresh private file (mktemp, mode 0600): a fixed /tmp name written as root follows whatever symlink is planted there.
    apt_log=$(mktemp -t curate-apt.XXXXXX)
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}") >"$apt_log" 2>&1 \
      || missing_part "apt-get install ${missing[*]} failed (see $apt_log)"
  fi
fi

# The integration tests talk to a real Label Studio, kept in its own venv (as `curate labelstudio serve` does).
ls_venv=${CURATE_LABEL_STUDIO_VENV:-.ls-venv}
if [ "$with_test" = 1 ] && [ ! -x "$ls_venv/bin/label-studio" ]; then
  echo "installing Label Studio into $ls_venv for the integration tests (about a minute)"
  "$python" -m venv "$ls_venv" && "$ls_venv/bin/python" -m pip install -q "label-studio==$ls_version" >"$ls_venv.log" 2>&1 \
    || missing_part "installing Label Studio $ls_version failed (see $ls_venv.log)"
fi

if [ "$with_test" = 1 ] && [ "${CI:-}" = true ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing_part "PostgreSQL server binaries not found"
  command -v chromium >/dev/null || missing_part "chromium not found"
  [ -x "$ls_venv/bin/label-studio" ] || missing_part "Label Studio not installed at $ls_venv"
fi

hash=$(cat pyproject.toml requirements.lock scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$venv/.deps-hash" ] && [ "$(cat "$venv/.deps-hash")" = "$hash" ] && [ -x "$venv/bin/curate" ]; then
  exit 0
fi

echo "setting up $venv (torch first, then curate in editable mode; a few minutes)"
ls_pid=""
run_ls_venv=${CURATE_LABEL_STUDIO_VENV:-${CURATE_HOME:-$HOME/.local/share/curate}/label-studio/venv}
if [ "$with_ls" = 1 ] && [ -z "${LABEL_STUDIO_URL:-}" ] && [ ! -x "$run_ls_venv/bin/label-studio" ]; then
  echo "installing Label Studio $ls_version into $run_ls_venv meanwhile (the review server of make run)"
  mkdir -p "$(dirname "$run_ls_venv")"
  [ -e "$run_ls_venv" ] || ls_made_here=1  # only a folder this run created is removed if the install fails
  ("$python" -m venv "$run_ls_venv" && "$run_ls_venv/bin/python" -m pip install -q "label-studio==$ls_version") >"$run_ls_venv.log" 2>&1 &
  ls_pid=$!
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
log="$venv/setup.log"
step() {  # quiet unless it fails; then the tail of the log says why
  if ! "$@" >>"$log" 2>&1; then
    echo "error: '$*' failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}
step "$venv/bin/python" -m pip install -q --upgrade pip
# The pinned torch build lies on the local disk; installing it first keeps pip from fetching another.
step "$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
# Exact versions from the committed lock (constraints): the same packages on every machine.
step "$venv/bin/python" -m pip install -q -c requirements.lock -e '.[dev]'
echo "$hash" >"$venv/.deps-hash"
if [ -n "$ls_pid" ] && ! wait "$ls_pid"; then
  echo "warning: installing Label Studio into $run_ls_venv failed (see $run_ls_venv.log); the workflow will try again" >&2
  if [ "${ls_made_here:-0}" = 1 ]; then rm -rf "$run_ls_venv"; fi
fi
echo "ready: $venv/bin/curate"
