#!/usr/bin/env bash
# Set up .venv, then run the pytest suite. Extra arguments go to pytest.
#
#   bash scripts/test.sh            the whole suite (what CI runs)
#   bash scripts/test.sh --quick    the unit tier only: leaves out the tests marked end_to_end
#                                   (bundle runs, scripts run end to end, multi-process and
#                                   multi-node training, the MONAI Label server) and research
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tier=()
if [ "${1:-}" = "--quick" ]; then
  shift
  tier=(-m "not end_to_end and not research")
fi
bash "$root/scripts/setup.sh"
cd "$root"
# Two pytest workers (pytest-xdist), each test file on one of them. Most of a test's time is a
# `python -m monai.bundle` (or script) process whose imports alone take about 15 s of one core on
# the 2-core development VM, so two side by side use both cores. `-n 0` among the extra
# arguments runs the tests in this process, `-n N` on N workers.
exec "$root/.venv/bin/python" -m pytest -q -ra -n 2 --dist loadfile "${tier[@]}" "$@"
