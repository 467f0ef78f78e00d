#!/usr/bin/env bash
# The README's two commands:
#   ./run.sh demo   fly the simulated drone with the shipped liquid policy through the real ROS 2 node
#   ./run.sh test   run the checks (import contracts, ruff, mypy) and the test suite
#   ./run.sh check  only the checks
# Both create .venv on first use and install the project with every extra into it
# (torch pinned to the CPU build, ROS 2 from PyPI wheels), so a fresh machine needs only Python >= 3.10.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
STAMP="$VENV/.installed"
PYTHON=${PYTHON:-python3}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      # Debian/Ubuntu ship venv separately from python3.
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "run.sh: python3 has no venv module; installing Debian's python3-venv." >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv "$VENV"
      else
        echo "run.sh: '$PYTHON -m venv' failed. Install your distribution's venv package (Debian: sudo apt-get install python3-venv) and retry." >&2
        exit 1
      fi
    fi
  fi
  if [ ! -f "$STAMP" ] || [ setup.py -nt "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ package.xml -nt "$STAMP" ]; then
    echo "run.sh: installing lnn_ros and its dependencies into $VENV (first run takes about a minute)..." >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[all]"
    touch "$STAMP"
  fi
}

run_checks() {
  # The layering (pyproject.toml [tool.importlinter]), lint and types: seconds once mypy's cache is warm.
  # LNN_ROS_SKIP_CHECKS=1 skips them (e.g. while iterating on one test file); CI always runs them.
  if [ "${LNN_ROS_SKIP_CHECKS:-0}" = 1 ] && [ "${CI:-}" != true ]; then
    echo "run.sh: LNN_ROS_SKIP_CHECKS=1: skipping lint-imports, ruff and mypy." >&2
    return 0
  fi
  "$VENV/bin/lint-imports" --no-cache
  "$VENV/bin/ruff" check .
  "$VENV/bin/mypy"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  demo)
    ensure_venv
    exec "$VENV/bin/lnn-ros" demo "$@"
    ;;
  check)
    ensure_venv
    run_checks
    ;;
  test)
    ensure_venv
    run_checks
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh demo [options]   fly the simulated drone with the shipped policy" >&2
    echo "       ./run.sh test [pytest options]   run the checks and the tests" >&2
    echo "       ./run.sh check                   run the checks only (import contracts, ruff, mypy)" >&2
    exit 2
    ;;
esac
