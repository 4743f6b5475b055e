#!/usr/bin/env bash
# The main job on the embedded demo data: set up .venv, build IU-Phantom if it is absent,
# print its summary and write a contact sheet. Output folder: $DEMO_OUTPUT (default demo_output/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
py="$root/.venv/bin/python"
out="${DEMO_OUTPUT:-$root/demo_output}"
data="$out/iu_phantom"

if [ -f "$data/datalist.json" ]; then
  echo "[demo] IU-Phantom found at $data (delete it to rebuild)"
else
  echo "[demo] building IU-Phantom at $data"
  "$py" scripts/prepare_demo_data.py --output_dir "$data"
fi
"$py" scripts/make_contact_sheet.py --datalist "$data/datalist.json" --output "$out/contact_sheet.png"
echo "[demo] contact sheet: $out/contact_sheet.png (shows licensed report text: do not redistribute)"
