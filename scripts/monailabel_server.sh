#!/usr/bin/env bash
# Serve the reclf_segmentation bundle with a real MONAI Label 0.8.5 server on 127.0.0.1.
#
#   bash scripts/monailabel_server.sh --setup-only
#   bash scripts/monailabel_server.sh --weights MODEL_PT --studies DIR [--app_dir DIR] [--port 8000]
#
# MONAI Label's pydicom-seg needs pydicom<3 and numpy<2, which do not fit this project's own
# environment; so the server gets its own virtual environment, built once per machine and cached
# outside the repository (RECLF_MONAILABEL_ENV, default ~/.cache/reclf-monai/monailabel-0.8.5),
# and rebuilt when the pins below (or the patch) change. The server imports reclf_monai from this
# checkout (PYTHONPATH), so it always serves the code next to this script.
#
# The environment is lean: 2.4 GB, built in 1.5 minutes (measured: a fresh RECLF_MONAILABEL_ENV,
# PIP_NO_CACHE_DIR=1, `time bash scripts/monailabel_server.sh --setup-only` 80-90 s and `du -sh`
# 2.4G on a 2-core AMD EPYC VM), instead of 8.4 GB and 11 minutes with monailabel's full
# dependency tree on torch 2.14.1 + torchvision 0.29.1:
# - torch is the 2.13.0 CPU wheel (0.8 GB installed; the CUDA build of torch 2.14.1 with
#   torchvision and its nvidia-* libraries unpacks to 4.5 GB, and a 2-D bundle is served well on
#   CPU). Where pip does not find that wheel, set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
# - monailabel is installed with --no-deps, plus only what `monailabel start_server` imports when
#   it loads the monaibundle app and serves one bundle: FastAPI/uvicorn, the DICOM packages
#   (pydicom 2.4.4, dicomweb-client[gcp], pynetdicom, pydicom-seg, SimpleITK), girder-client,
#   scikit-image, shapely, nibabel, pynrrd and itk (all imported at module level by the server).
# - Left out, as nothing on that path imports them: sam2 (with hydra; SAM2 is off), numpymaxflow
#   (scribbles apps), ninja (builds sam2's extension), scikit-learn, expiringdict, bcrypt (passlib's
#   bcrypt context is created but never used: the server's auth is off), and
#   MONAI's extras mlflow, lmdb, openslide, fire, gdown, tensorboard, pytorch-ignite (the bundle's
#   evaluator is not used: MONAI Label runs its own pre-/post-processing around the network).
# - itk: only itk-core and itk-io (560 MB), not the itk meta-package's filtering, numerics,
#   registration and segmentation modules (950 MB more): the server uses itk only to write the
#   result image (itk.image_from_array, itk.imwrite), which the check below exercises.
# - torchvision is left out: PyPI's torchvision 0.28.0 (the one for torch 2.13) is built against
#   CUDA torch and fails to import beside the CPU wheel ('operator torchvision::nms does not
#   exist'). monailabel imports it in one place, at module level in monailabel/transform/post.py,
#   for make_grid/save_image, which only DumpImagePrediction2Dd calls (a debugging transform that
#   no sample app and no other monailabel module uses); the bundle infer task imports that module
#   for Restored. The setup rewrites that one import into MONAI's optional_import (a lazy import
#   that raises OptionalImportError only if DumpImagePrediction2Dd is called), and fails if the
#   line is not there exactly once.
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

# The pins that work together. torch first and alone (its CPU wheel), then the rest in one resolve
# (numpy<2 and pydicom<3 for pydicom-seg), then monailabel without its declared dependencies.
torch_pins=(torch==2.13.0+cpu)
server_pins=(monai==1.6.1 fastapi==0.165.0 uvicorn==0.55.0 pydantic==2.14.4 pydantic-settings==2.16.3
  python-dotenv==1.2.4 python-multipart==0.0.34 httpx==0.29.0 requests==2.34.2 requests-toolbelt==1.0.0
  urllib3==2.8.0 schedule==1.2.2 timeloop==1.0.2 expiring_dict==1.1.2 cachetools==8.0.3 watchdog==7.1.1
  psutil==7.2.2 filelock==4.3.2 PyYAML==6.0.4 passlib==1.7.4 PyJWT==2.15.1 google-auth==2.63.1
  girder-client==5.0.21 scipy==1.17.1 scikit-image==0.26.0 shapely==2.2.0 nibabel==5.4.2 pynrrd==1.1.3
  itk-io==5.4.7 itk-core==5.4.7 pillow==13.0.0)
dicom_pins=(pydicom==2.4.4 "dicomweb-client[gcp]==0.59.1" pynetdicom==2.0.2 pydicom-seg==0.4.1 SimpleITK==2.5.7 numpy==1.26.4)
package_pins=(transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0 einops==0.8.2 tqdm==4.70.1)
monailabel_pin=monailabel==0.8.5
patch_version="post.py: torchvision via optional_import (1)"
want="$(printf '%s\n' "${torch_pins[@]}" "${server_pins[@]}" "${dicom_pins[@]}" "${package_pins[@]}" \
  "$monailabel_pin --no-deps" "$patch_version" | sha256sum | cut -d' ' -f1)"
stamp="$env_dir/.reclf_monailabel_stamp"

pip_install() {  # pip_install WHAT_FOR ARGS...: quiet, without the notes about unreachable local indexes
  local what="$1"; shift
  echo "[monailabel] pip install $*"
  "$env_dir/bin/python" -m pip --disable-pip-version-check install -q "$@" 2>&1 \
    | sed '/^WARNING: Location .* is ignored/d' || fail "could not install $what into $env_dir"
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[monailabel] environment is current: $env_dir"
else
  command -v "$python_for_env" >/dev/null || fail "$python_for_env not found (set RECLF_MONAILABEL_PYTHON)"
  echo "[monailabel] building the server environment in $env_dir (once per machine; 2.4 GB, about 1.5 minutes)"
  rm -rf "$env_dir"
  mkdir -p "$(dirname "$env_dir")"
  "$python_for_env" -m venv "$env_dir"
  pip_install "the CPU wheel of torch 2.13.0 (${torch_pins[*]}; where pip does not find it, set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)" \
    "${torch_pins[@]}"
  pip_install "MONAI Label's server dependencies and reclf_monai's" \
    "${torch_pins[@]}" "${server_pins[@]}" "${dicom_pins[@]}" "${package_pins[@]}"
  pip_install "$monailabel_pin" --no-deps "$monailabel_pin"
  # The one module-level torchvision import on the server's path (see the header): made lazy.
  "$env_dir/bin/python" - <<'PATCH' || fail "could not make monailabel/transform/post.py import torchvision lazily (has monailabel changed?)"
import sysconfig
from pathlib import Path

post = Path(sysconfig.get_paths()["purelib"]) / "monailabel" / "transform" / "post.py"
text = post.read_text()
eager = "from torchvision.utils import make_grid, save_image\n"
lazy = (
    "# reclf-monai: imported lazily, torchvision is not installed (scripts/monailabel_server.sh)\n"
    'make_grid, _ = optional_import("torchvision.utils", name="make_grid")\n'
    'save_image, _ = optional_import("torchvision.utils", name="save_image")\n'
)
if text.count(eager) != 1 or "from monai.utils import" not in text.split(eager)[0]:
    raise SystemExit(f"{post}: expected one '{eager.strip()}' after MONAI's optional_import")
post.write_text(text.replace(eager, lazy))
PATCH
  # What the server imports to serve the bundle, and the result writer (itk-core + itk-io only).
  PYTHONPATH="$root" "$env_dir/bin/python" - <<'CHECK' >/dev/null || fail "the environment in $env_dir cannot import monailabel's server and reclf_monai, or cannot write a PNG result"
import tempfile

import numpy as np

import monailabel.app, monailabel.main, monailabel.tasks.infer.bundle, monailabel.tasks.train.bundle  # noqa: E401,F401
import monailabel.tasks.activelearning.first, monailabel.tasks.activelearning.random  # noqa: E401,F401
import monailabel.tasks.scoring.epistemic_v2  # noqa: F401
import reclf_monai.data, reclf_monai.networks  # noqa: E401,F401
from monailabel.transform.writer import write_itk
from PIL import Image

with tempfile.TemporaryDirectory() as folder:
    mask = (np.arange(12).reshape(3, 4) % 2).astype(np.uint8)
    write_itk(mask, f"{folder}/mask.png", None, np.uint8, False)
    assert (np.asarray(Image.open(f"{folder}/mask.png")) == mask.T).all()
CHECK
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
