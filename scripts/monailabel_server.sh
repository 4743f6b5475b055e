#!/usr/bin/env bash
# Serve the reclf_segmentation bundle with a real MONAI Label 0.8.5 server on 127.0.0.1.
#
#   bash scripts/monailabel_server.sh --setup-only
#   bash scripts/monailabel_server.sh --weights MODEL_PT --studies DIR [--app_dir DIR] [--port 8000]
#
# MONAI Label pins torch 2.14.1, torchvision 0.29.1 and numpy<2, and its pydicom-seg needs
# pydicom<3, none of which fit this project's own environment; so the server gets its own virtual
# environment, built once per machine and cached outside the repository (RECLF_MONAILABEL_ENV,
# default ~/.cache/reclf-monai/monailabel-0.8.5). The server imports reclf_monai from this
# checkout (PYTHONPATH), so it always serves the code next to this script.
#
# The app is MONAI Label's own `monaibundle` sample app (shipped in the monailabel wheel) with
# APP_DIR/model/reclf_segmentation = this repository's bundle and models/model.pt = MODEL_PT (a
# checkpoint written by the bundle's train.json). It runs offline: local zoo source, SAM2 off.
# The server runs in the foreground; stop it with Ctrl-C (or SIGTERM).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="${RECLF_MONAILABEL_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/reclf-monai/monailabel-0.8.5}"
python_for_env="${RECLF_MONAILABEL_PYTHON:-python3.11}"
bundle=reclf_segmentation

usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
fail() { echo "[monailabel] error: $*" >&2; exit 2; }

setup_only=false weights="" studies="" app_dir="" port=8000
while [ $# -gt 0 ]; do
  case "$1" in
    --setup-only) setup_only=true; shift ;;
    --weights) weights="$2"; shift 2 ;;
    --studies) studies="$2"; shift 2 ;;
    --app_dir) app_dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; fail "unknown argument '$1'" ;;
  esac
done

# The pins that work together (../shared/DESIGN.md section 5), then what reclf_monai imports.
server_pins=(torch==2.14.1 torchvision==0.29.1 monai==1.6.1 monailabel==0.8.5)
dicom_pins=(pydicom==2.4.4 dicomweb-client==0.59.1 pynetdicom==2.0.2)
package_pins=(transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0 einops==0.8.2 nibabel==5.4.2 tqdm==4.70.1)
want="$(printf '%s\n' "${server_pins[@]}" "${dicom_pins[@]}" "${package_pins[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$env_dir/.reclf_monailabel_stamp"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[monailabel] environment is current: $env_dir"
else
  command -v "$python_for_env" >/dev/null || fail "$python_for_env not found (set RECLF_MONAILABEL_PYTHON)"
  echo "[monailabel] building the server environment in $env_dir (once per machine; several GB, minutes)"
  rm -rf "$env_dir"
  mkdir -p "$(dirname "$env_dir")"
  "$python_for_env" -m venv "$env_dir"
  for pins in "${server_pins[*]}" "${dicom_pins[*]}" "${package_pins[*]}"; do
    echo "[monailabel] pip install $pins"
    # shellcheck disable=SC2086 (the pins are words)
    "$env_dir/bin/python" -m pip --disable-pip-version-check install -q $pins 2>&1 \
      | sed '/^WARNING: Location .* is ignored/d' || fail "could not install $pins into $env_dir"
  done
  PYTHONPATH="$root" "$env_dir/bin/python" -c "import monailabel, reclf_monai.networks, reclf_monai.data" \
    || fail "the environment in $env_dir cannot import monailabel and reclf_monai"
  echo "$want" > "$stamp"
  echo "[monailabel] environment ready"
fi
$setup_only && exit 0

[ -n "$weights" ] || fail "--weights MODEL_PT is required (a checkpoint from the $bundle bundle's train.json)"
[ -f "$weights" ] || fail "weights file '$weights' does not exist"
[ -n "$studies" ] || fail "--studies DIR is required (a folder of PNG/DICOM images to serve)"
[ -d "$studies" ] || fail "studies folder '$studies' does not exist"
app_dir="${app_dir:-$root/monailabel_app}"

export PATH="$env_dir/bin:$PATH"  # the monailabel command runs the `python` it finds first
if [ ! -f "$app_dir/main.py" ]; then
  echo "[monailabel] copying the monaibundle sample app to $app_dir"
  staging="$(mktemp -d)"
  monailabel apps --download --name monaibundle --output "$staging" >/dev/null \
    || fail "monailabel apps --download --name monaibundle failed"
  mkdir -p "$(dirname "$app_dir")"
  mv "$staging/monaibundle" "$app_dir"
  rmdir "$staging"
fi
echo "[monailabel] installing $bundle with weights $weights in $app_dir/model"
rm -rf "$app_dir/model/$bundle"
mkdir -p "$app_dir/model"
cp -r "$root/bundles/$bundle" "$app_dir/model/$bundle"
mkdir -p "$app_dir/model/$bundle/models"
cp "$weights" "$app_dir/model/$bundle/models/model.pt"

echo "[monailabel] starting the server on http://127.0.0.1:$port (model: $bundle)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec monailabel start_server --app "$app_dir" --studies "$studies" \
  --host 127.0.0.1 --port "$port" \
  --conf models "$bundle" --conf zoo_source local --conf sam2 false --conf skip_trainers true
