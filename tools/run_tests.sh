#!/usr/bin/env bash
# Runs the test suite in the project's venv; pytest's exit code 5 (no tests collected)
# is an error here: a suite that ran nothing has proven nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run_tests: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
