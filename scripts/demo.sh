#!/usr/bin/env bash
# The main job on the embedded demo data (CPU, about 20 minutes after set-up):
#   1. set up .venv;
#   2. build IU-Phantom (real IU reports, synthetic images) if it is absent, and a contact sheet;
#   3. pretrain RECLF on it with the reclf_pretrain bundle (TensorBoard logs, checkpoints);
#   4. evaluate the pretrained model and, for reference, the same network untrained
#      (--load_pretrain false); print zero-shot AUC/ACC and retrieval Recall@K side by side.
# Output folder: $DEMO_OUTPUT (default demo_output/). Extra arguments are passed to the
# training run as bundle overrides, e.g.  bash scripts/demo.sh --aggregation lse
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
py="$root/.venv/bin/python"
out="${DEMO_OUTPUT:-$root/demo_output}"
data="$out/iu_phantom"
run="$out/reclf_pretrain"
bundle="$root/bundles/reclf_pretrain"
export HF_HUB_OFFLINE=1

if [ -f "$data/datalist.json" ]; then
  echo "[demo] IU-Phantom found at $data (delete it to rebuild)"
else
  echo "[demo] building IU-Phantom at $data"
  "$py" scripts/prepare_demo_data.py --output_dir "$data"
fi
"$py" scripts/make_contact_sheet.py --datalist "$data/datalist.json" --output "$out/contact_sheet.png"
echo "[demo] contact sheet: $out/contact_sheet.png (shows licensed report text: do not redistribute)"

# CPU-sized schedule: 128 px images, ResNet-18, MiniLM with its 4 lower layers frozen, 3 epochs,
# validation (all-pairs retrieval with the local scorer) once at the end.
settings=(--bundle_root "$bundle" --dataset_dir "$data" --ckpt_dir "$run/models"
  --image_size 128 --embed_dim 128 --max_length 96 --batch_size 32 --freeze_text_layers 4
  --learning_rate 0.0003 --warmup_epochs 0.5)
bundle_run() { "$py" -m monai.bundle run --logging_file "$bundle/configs/logging.conf" "$@"; }

rm -rf "$run"
echo "[demo] pretraining (aggregation reclf unless overridden; progress below; TensorBoard: $run/eval/tensorboard)"
start=$(date +%s)
bundle_run --config_file "$bundle/configs/train.json" "${settings[@]}" --output_dir "$run/eval" \
  --train#trainer#max_epochs 3 --val_interval 3 "$@"
echo "[demo] pretraining took $(( $(date +%s) - start )) s"

# Evaluation takes the network's settings (size, aggregation, text encoder...) from the checkpoint.
evaluation=(--config_file "['$bundle/configs/train.json','$bundle/configs/evaluate.json']" --bundle_root "$bundle"
  --dataset_dir "$data" --ckpt_dir "$run/models")
echo "[demo] evaluating the pretrained model"
bundle_run "${evaluation[@]}" --output_dir "$run/eval"
echo "[demo] evaluating the same network untrained (reference: --load_pretrain false)"
bundle_run "${evaluation[@]}" --output_dir "$run/untrained" --load_pretrain false

echo
echo "[demo] results on IU-Phantom (synthetic images; zero-shot on zeroshot_5xN.json, retrieval on the validation split)"
"$py" scripts/summarize_metrics.py "untrained network=$run/untrained/metrics.json" "pretrained${*:+ ($*)}=$run/eval/metrics.json"
echo "[demo] TensorBoard logs: $run/eval/tensorboard   (tensorboard --logdir $run/eval/tensorboard)"
echo "[demo] total time $(( $(date +%s) - start )) s after IU-Phantom"
