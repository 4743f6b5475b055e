#!/usr/bin/env python
"""One table over the downstream tasks: a pretraining checkpoint next to a random-initialised encoder.

Runs every task bundle under bundles/ through ``monai.bundle.run`` (what ``python -m monai.bundle
run`` calls; in one process, so the libraries load once) and prints, then writes to
OUTPUT_DIR/downstream_table.md and .json, one row per figure:

- zero-shot classification, five classes and the laterality set (macro AUC, ACC);
- linear classification (frozen encoder + linear head) at ``--data_fraction``: test macro AUC;
- segmentation (frozen encoder + U-Net decoder) at ``--data_fraction``: test mean Dice and Dice
  over the images with a finding;
- class-match retrieval Precision@5 (reports, both directions);
- grounding: pointing-game accuracy over the test findings, and its chance level (the mean share
  of the image that the findings' regions cover).

The baseline is the same network with random weights: ``--load_pretrain false`` for the bundles
that use the whole pretrained model (zero-shot, retrieval, grounding), ``--pretrained_checkpoint
none`` with the checkpoint's image size for those that train on the image encoder. Every run
writes its own folder OUTPUT_DIR/TASK/ENCODER (logs, TensorBoard, checkpoints, metrics.json); a
run whose folder holds a finished record with the same settings and the same checkpoint file
(path, size, modification time) is not run again, so a stopped table continues where it stopped. ``--eval_items N`` scores the classification, segmentation and
grounding runs on a seeded sample of N test (and validation) images, for a quick table. A
``global_only`` checkpoint has no local scorer, so the grounding task is left out for it.

    python scripts/downstream_table.py --checkpoint RUN/models/model.pt \
        --dataset_dir demo_output/iu_phantom --output_dir runs/downstream
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = ("pretrained", "random")
RECORD = "downstream_run.json"
# Tasks that read the local scorer's word-to-region attention: not defined for a `global_only`
# checkpoint, which is left out of them (with a line saying so) rather than failing there.
LOCAL_SCORER_TASKS = ("grounding",)
# The figure that describes the test regions rather than the model (grounding's chance level).
CHANCE_LEVEL = "its chance level"


@dataclass
class Step:
    """One bundle run: its config files (relative to configs/), run id and overrides."""

    configs: list[str]
    overrides: dict[str, Any]
    run_id: str = "run"


@dataclass
class Task:
    """A table section: the bundle, the runs per encoder and the figures read from metrics.json."""

    key: str
    name: str
    bundle: str
    steps: Callable[[str, Path], list[Step]]
    figures: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="reclf_pretrain checkpoint (model.pt or checkpoint_epoch=E.pt)")
    parser.add_argument("--dataset_dir", required=True, help="IU-Phantom folder (datalist.json, zero-shot sets, masks)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--tasks", nargs="+", default=None, help="some of: zeroshot_five zeroshot_laterality classification segmentation retrieval grounding (default: all)")
    parser.add_argument("--data_fraction", type=float, default=0.1, help="training labels for classification and segmentation")
    parser.add_argument("--classification_epochs", type=int, default=5)
    parser.add_argument("--segmentation_epochs", type=int, default=2)
    parser.add_argument("--eval_items", type=int, default=None, help="score classification/segmentation/grounding on N sampled test images")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def sampled_datalist(datalist: Path, output_dir: Path, items: int, seed: int) -> Path:
    """A copy of `datalist` (paths made absolute) whose validation and test splits are a seeded
    sample of `items` each."""
    from reclf_monai.data import datalist_splits, load_datalist

    content = json.loads(datalist.read_text())
    for split in datalist_splits(datalist):
        content[split] = load_datalist(datalist, split, required_keys=())
        if split in ("validation", "test") and len(content[split]) > items:
            content[split] = random.Random(seed).sample(content[split], items)
    target = output_dir / f"datalist_sample{items}.json"
    target.write_text(json.dumps(content))
    return target


def build_tasks(args: argparse.Namespace, image_size: int, datalist: Path) -> list[Task]:
    checkpoint, data = str(Path(args.checkpoint).resolve()), Path(args.dataset_dir).resolve()
    common = {"dataset_dir": str(data), "num_workers": args.num_workers}

    def whole_model(extra: dict[str, Any], run_id="run"):
        def steps(encoder: str, folder: Path) -> list[Step]:
            overrides = {**common, **extra, "pretrained_checkpoint": checkpoint, "output_dir": str(folder)}
            if encoder == "random":
                overrides["load_pretrain"] = False
            return [Step(["inference.json", "evaluate.json"], overrides, run_id)]

        return steps

    def trained_on_encoder(epochs: int):
        def steps(encoder: str, folder: Path) -> list[Step]:
            weights = {"pretrained_checkpoint": checkpoint}
            if encoder == "random":
                weights = {"pretrained_checkpoint": "none", "image_size": image_size}
            shared = {**common, "datalist": str(datalist), "ckpt_dir": str(folder / "models")}
            train = {
                **shared, **weights, "data_fraction": args.data_fraction, "train#trainer#max_epochs": epochs,
                "val_interval": epochs, "output_dir": str(folder / "train"), "seed": args.seed,
                "overwrite": True,  # a task runs again only when its folder holds no finished run with these settings
            }
            evaluate = {**shared, "output_dir": str(folder)}
            return [Step(["train.json"], train), Step(["inference.json", "evaluate.json"], evaluate)]

        return steps

    laterality = {"zeroshot_datalist": str(data / "zeroshot_laterality.json"), "prompts_file": str(data / "prompts_laterality.json")}
    percent = f"{100 * args.data_fraction:g} %"
    return [
        Task("zeroshot_five", "zero-shot, five classes", "reclf_zeroshot_classification", whole_model({}),
             [("macro AUC", ("zero_shot", "auc")), ("ACC", ("zero_shot", "acc"))]),
        Task("zeroshot_laterality", "zero-shot, laterality", "reclf_zeroshot_classification", whole_model(laterality),
             [("macro AUC", ("zero_shot", "auc")), ("ACC", ("zero_shot", "acc"))]),
        Task("classification", f"linear classification, {percent} labels", "reclf_classification",
             trained_on_encoder(args.classification_epochs), [("test macro AUC", ("test", "auc"))]),
        Task("segmentation", f"segmentation, {percent} labels", "reclf_segmentation", trained_on_encoder(args.segmentation_epochs),
             [("test mean Dice", ("test", "mean_dice")), ("Dice, images with a finding", ("test", "dice_nonempty"))]),
        Task("retrieval", "retrieval, class match", "reclf_retrieval", whole_model({}, run_id="run_class_retrieval"),
             [("P@5", ("class_retrieval", "P@5"))]),
        Task("grounding", "grounding", "reclf_grounding", whole_model({"eval_datalist": str(datalist)}),
             [("pointing game", ("all", "pointing_game")), (CHANCE_LEVEL, ("all", "region_fraction"))]),
    ]


def read_figure(metrics: dict, path: tuple[str, ...], source: Path) -> float:
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"{source}: no {'/'.join(path)} in the bundle's metrics")
        value = value[key]
    return float(value)


def checkpoint_identity(checkpoint: Path) -> dict[str, Any]:
    """Path, size and modification time: a checkpoint rewritten at the same path is another one."""
    status = checkpoint.stat()
    return {"path": str(checkpoint.resolve()), "bytes": status.st_size, "modified_ns": status.st_mtime_ns}


def finished_record(task: Task, encoder: str, folder: Path, checkpoint: Path) -> dict[str, Any] | None:
    """The record (figures, seconds) of a finished run in `folder` with the settings these
    arguments give, checkpoint file included; None when the run has to be done."""
    record = folder / RECORD
    if record.exists():
        previous = json.loads(record.read_text())
        if previous.get("settings") == run_settings(task, encoder, folder, checkpoint):
            return previous
    return None


def run_settings(task: Task, encoder: str, folder: Path, checkpoint: Path) -> dict[str, Any]:
    return {"checkpoint": checkpoint_identity(checkpoint), "runs": [step.__dict__ for step in task.steps(encoder, folder)]}


def run_step(bundle: str, step: Step) -> None:
    """One bundle run in this process, as ``python -m monai.bundle run`` would do it."""
    from monai.bundle import run

    root = ROOT / "bundles" / bundle
    files = [str(root / "configs" / name) for name in step.configs]
    run(
        run_id=step.run_id,
        config_file=files if len(files) > 1 else files[0],
        logging_file=str(root / "configs" / "logging.conf"),
        bundle_root=str(root),
        **step.overrides,
    )


def run_task(task: Task, encoder: str, folder: Path, checkpoint: Path) -> dict[str, float]:
    """Run the task's steps for one encoder (or reuse a finished record with the same settings,
    checkpoint file included)."""
    previous = finished_record(task, encoder, folder, checkpoint)
    if previous is not None:
        print(f"[downstream] {task.name} / {encoder}: reusing {folder / RECORD}", flush=True)
        return previous["figures"]
    settings = run_settings(task, encoder, folder, checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    for step in task.steps(encoder, folder):
        run_step(task.bundle, step)
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    figures = {label: read_figure(metrics, path, metrics_file) for label, path in task.figures}
    seconds = time.time() - start
    (folder / RECORD).write_text(json.dumps({"settings": settings, "figures": figures, "seconds": seconds}, indent=2))
    print(f"[downstream] {task.name} / {encoder}: {figures} in {seconds:.0f} s", flush=True)
    return figures


def root_cause(error: BaseException) -> str:
    """The innermost error of a chain: MONAI wraps a config's error in 'Failed to evaluate ...'."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| task | figure | pretrained | random init |", "|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[encoder]:.3f}" if not math.isnan(row[encoder]) else "failed" for encoder in ENCODERS]
        lines.append(f"| {row['task']} | {row['figure']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from reclf_monai.networks import pretraining_settings

    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = pretraining_settings(args.checkpoint)  # read once: architecture and image size
    image_size = settings["image_encoder"]["img_size"]
    datalist = Path(args.dataset_dir).resolve() / "datalist.json"
    if args.eval_items:
        datalist = sampled_datalist(datalist, output_dir, args.eval_items, args.seed)
    tasks = build_tasks(args, image_size, datalist)
    if args.tasks:
        unknown = set(args.tasks) - {task.key for task in tasks}
        if unknown:
            raise SystemExit(f"unknown tasks {sorted(unknown)}; choose from {[task.key for task in tasks]}")
        tasks = [task for task in tasks if task.key in args.tasks]
    if settings["aggregation"] == "global_only":
        skipped = [task.name for task in tasks if task.key in LOCAL_SCORER_TASKS]
        if skipped:
            print(f"[downstream] left out for a global_only checkpoint (no local scorer): {', '.join(skipped)}", flush=True)
        tasks = [task for task in tasks if task.key not in LOCAL_SCORER_TASKS]

    rows, failures = [], []
    for index, task in enumerate(tasks):
        results = {}
        for encoder in ENCODERS:
            print(f"[downstream] ({index + 1}/{len(tasks)}) {task.name} / {encoder}", flush=True)
            folder = output_dir / task.key / encoder
            try:
                results[encoder] = run_task(task, encoder, folder, Path(args.checkpoint))
            except Exception as error:  # one failing task must not hide the others' results
                failures.append(f"{task.name} / {encoder}: {root_cause(error)}")
                print(f"[downstream] FAILED {task.name} / {encoder}: {root_cause(error)}", file=sys.stderr, flush=True)
                results[encoder] = {}
        for label, _ in task.figures:
            rows.append({"task": task.name, "figure": label,
                         **{encoder: results[encoder].get(label, float("nan")) for encoder in ENCODERS}})

    table = markdown_table(rows)
    (output_dir / "downstream_table.md").write_text(table + "\n")
    (output_dir / "downstream_table.json").write_text(json.dumps(
        {"checkpoint": str(Path(args.checkpoint).resolve()), "settings": vars(args), "rows": rows}, indent=2))
    print(table)
    for failure in failures:
        print(f"[downstream] failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
