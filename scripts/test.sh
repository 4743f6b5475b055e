#!/usr/bin/env bash
# Set up .venv, then run the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
# Two pytest workers (pytest-xdist), each test file on one of them. Most of a test's time is a
# `python -m monai.bundle` (or script) process whose imports alone take about 15 s of one core on
# the 2-core development VM, so two side by side use both cores. `-n 0` among the extra
# arguments runs the tests in this process, `-n N` on N workers.
exec "$root/.venv/bin/python" -m pytest -q -ra -n 2 --dist loadfile "$@"
