#!/usr/bin/env bash
# The main job on the embedded demo data (CPU; its measured time is in docs/results.md, with the corpus
# already built):
#   1. set up .venv;
#   2. build IU-Phantom (real IU reports, synthetic images) if it is absent, and a contact sheet;
#   3. pretrain RECLF on it with the reclf_pretrain bundle (2 epochs; TensorBoard logs, checkpoints);
#   4. run every downstream task bundle on the pretrained model and on the same network untrained
#      (from ImageNet, and random) (scripts/downstream_table.py, short schedules) and print one table
#      with chance levels: zero-shot five-class and laterality, the relation probe, linear
#      classification and segmentation at 10 % labels, retrieval P@5, pointing game; with the
#      difference to the best baseline, the seed-to-seed noise measured by the ablation
#      (docs/results_ablation_imagenet.json) and a PNG figure; the run is recorded in
#      $DEMO_OUTPUT/demo_run.json (scripts/document_figures.py publishes it into the docs).
# Output folder: $DEMO_OUTPUT (default demo_output/). An earlier run's results there are kept: the
# demo stops and names them, unless its first argument is --overwrite. IU-Phantom is reused.
# Other arguments are passed to the pretraining run as bundle overrides, e.g.
#   bash scripts/demo.sh --aggregation lse
#   DEMO_OUTPUT=demo_output_96 bash scripts/demo.sh --image_size 96   (beside the 128-px results)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
overwrite=false
if [ "${1:-}" = "--overwrite" ]; then
  overwrite=true
  shift
fi
bash "$root/scripts/setup.sh"
cd "$root"
py="$root/.venv/bin/python"
out="${DEMO_OUTPUT:-$root/demo_output}"
data="${DEMO_DATA:-$out/iu_phantom}"
run="$out/reclf_pretrain"
bundle="$root/bundles/reclf_pretrain"
export HF_HUB_OFFLINE=1
demo_start=$(date +%s)

earlier=()
for folder in "$run" "$out/downstream"; do
  [ -e "$folder" ] && earlier+=("$folder")
done
if [ ${#earlier[@]} -gt 0 ]; then
  if ! $overwrite; then
    echo "[demo] error: ${earlier[*]} hold(s) an earlier demo run's results; keep them by running with" >&2
    echo "[demo]   DEMO_OUTPUT=ANOTHER_FOLDER DEMO_DATA=$data bash scripts/demo.sh ..., or replace them with" >&2
    echo "[demo]   bash scripts/demo.sh --overwrite ..." >&2
    exit 1
  fi
  echo "[demo] --overwrite: deleting the earlier run's ${earlier[*]}"
  rm -rf "${earlier[@]}"
fi

if [ -f "$data/datalist.json" ]; then
  echo "[demo] IU-Phantom found at $data (delete it to rebuild)"
else
  echo "[demo] building IU-Phantom at $data"
  "$py" scripts/prepare_demo_data.py --output_dir "$data"
fi
if [ ! -f "$data/relation_probe.json" ]; then
  echo "[demo] adding the relation probe to IU-Phantom at $data"
  "$py" scripts/prepare_demo_data.py --output_dir "$data" --relation_probe_only
fi
"$py" scripts/make_contact_sheet.py --datalist "$data/datalist.json" --output "$out/contact_sheet.png"
echo "[demo] contact sheet: $out/contact_sheet.png (shows licensed report text: do not redistribute)"

# CPU-sized schedule (the bundle's configs/cpu_schedule.json, also the ablation's): EfficientNet-Lite0
# from the ImageNet weights that ship in its package (stem and first three stages frozen), 128 px,
# MiniLM with its 4 lower layers frozen (their output kept per report), 2 epochs (cosine schedule to
# the end); one validation, after the last epoch: it writes models/model.pt (the checkpoint the
# evaluation commands and task bundles read) and TensorBoard's validation scalars, word heatmaps and
# word-weight chart.
schedule="$bundle/configs/cpu_schedule.json"
epochs=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["train#trainer#max_epochs"])' "$schedule")
settings=(--bundle_root "$bundle" --dataset_dir "$data" --ckpt_dir "$run/models")
bundle_run() { "$py" -m monai.bundle run --logging_file "$bundle/configs/logging.conf" "$@"; }

echo "[demo] pretraining (aggregation reclf unless overridden; progress below; TensorBoard: $run/eval/tensorboard)"
start=$(date +%s)
bundle_run --config_file "['$bundle/configs/train.json','$schedule']" "${settings[@]}" --output_dir "$run/eval" \
  --val_interval "$epochs" "$@"
pretraining_seconds=$(( $(date +%s) - start ))
echo "[demo] pretraining took $pretraining_seconds s"

# Downstream: every task bundle on the pretrained model and on the same network untrained (from
# ImageNet, and random with batch-norm statistics estimated), with chance levels; test figures on
# a seeded sample of 200 test (and validation) images for classification, segmentation and
# grounding. The linear head's and decoder's learning rates and epochs, and the decoder's batch of
# 4, were chosen on validation (research/notebook.md).
downstream_start=$(date +%s)
"$py" scripts/downstream_table.py --checkpoint "$run/models/model.pt" --dataset_dir "$data" \
  --output_dir "$out/downstream" --data_fraction 0.1 --classification_epochs 5 --classification_learning_rate 0.01 \
  --segmentation_epochs 3 --segmentation_learning_rate 0.002 --segmentation_batch_size 4 \
  --eval_items 200 \
  --noise_from "$root/docs/results_ablation_imagenet.json"
echo "[demo] downstream tasks took $(( $(date +%s) - downstream_start )) s"
"$py" scripts/make_gallery.py --checkpoint "$run/models/model.pt" --dataset_dir "$data" --output_dir "$out/gallery"
"$py" scripts/document_figures.py record "$out" --pretraining_seconds "$pretraining_seconds" \
  --total_seconds "$(( $(date +%s) - demo_start ))"
echo "[demo] the table: $out/downstream/downstream_table.md, drawn in $out/downstream/downstream_table.png; each run's logs, TensorBoard and metrics: $out/downstream/TASK/ENCODER"
echo "[demo] gallery of phrase heatmaps and word weights: $out/gallery/gallery.md (licensed report text: keep it local)"
echo "[demo] pretrained model: $run/models/model.pt; TensorBoard logs: $run/eval/tensorboard   (tensorboard --logdir $run/eval/tensorboard)"
echo "[demo] total time $(( $(date +%s) - demo_start )) s (pretraining and downstream $(( $(date +%s) - start )) s)"
