#!/usr/bin/env python
"""One table over the downstream tasks: a pretraining checkpoint next to the same network untrained.

Runs every task bundle under bundles/ through ``monai.bundle.run`` (what ``python -m monai.bundle
run`` calls; in one process, so the libraries load once) and prints, then writes to
OUTPUT_DIR/downstream_table.md and .json, one row per figure:

- zero-shot classification, five classes and the laterality set (macro AUC, ACC);
- the relation probe (IU-Phantom's ``relation_probe.json``, scored by the zero-shot bundle's
  ``configs/relation_probe.json``): how often the model prefers a report to the same report with
  the sides swapped (over images with two findings on opposite sides, and the other way round, the
  image to its mirror for the report), and to the report with a finding negated;
- linear classification (frozen encoder + linear head) at ``--data_fraction``: test macro AUC;
- segmentation (frozen encoder + U-Net decoder) at ``--data_fraction``: test mean Dice and Dice
  over the images with a finding;
- class-match retrieval Precision@5 (reports, both directions);
- grounding: pointing-game accuracy over the test findings.

The baselines (``--baselines``) are the checkpoint's network before pretraining
(:mod:`reclf_monai.networks.untrained_baselines`): ``imagenet``, its image backbone with ImageNet
weights (the start papers compare against), and ``random``, random image weights with batch-norm
statistics estimated on the training images; both with the language model's own weights. Each is
written once to OUTPUT_DIR/baselines/NAME.pt and every bundle reads it as it reads the pretrained
checkpoint. Beside them a chance column says what a model that learnt nothing scores: 0.5 AUC, a
uniform guess's accuracy, the empty mask's Dice, a random ranking's precision, and the pointing
game's chance (the mean share of the image that the findings' regions cover). A difference
column gives the pretrained figure minus the best baseline's, and ``--noise_from`` an ablation
report (research/run_ablation.py's JSON) adds the run-to-run noise measured there: the sample
standard deviation over pretraining seeds of the checkpoint's aggregation, task by task, so a
difference can be read against it. OUTPUT_DIR/downstream_table.png draws the table: one group of
bars per figure, chance as a dashed line, the noise as the pretrained bar's error bar.

Every run writes its own folder OUTPUT_DIR/TASK/ENCODER (logs, TensorBoard, checkpoints, metrics.json); a
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
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = "pretrained"
COLUMNS = {PRETRAINED: "pretrained", "imagenet": "ImageNet, not pretrained", "random": "random init"}
RECORD = "downstream_run.json"
# Tasks that read the local scorer's word-to-region attention: not defined for a `global_only`
# checkpoint, which is left out of them (with a line saying so) rather than failing there.
LOCAL_SCORER_TASKS = ("grounding",)
# The segmentation bundle's DiceCELoss `batch` switch, by name: Dice over the batch's pixels or per image.
DICE_LOSSES = {"batch": True, "image": False}
# The options each task's figures depend on besides the checkpoint (None: the bundle's default). An
# ablation's seed-to-seed noise counts for a task only where its study ran the same ones.
SCHEDULE_OPTIONS = {
    "classification": ("classification_epochs", "classification_learning_rate", "eval_items"),
    "segmentation": ("segmentation_epochs", "segmentation_learning_rate", "segmentation_batch_size", "segmentation_dice", "eval_items"),
    "grounding": ("eval_items",),
}


@dataclass
class Step:
    """One bundle run: its config files (relative to configs/), run id and overrides."""

    configs: list[str]
    overrides: dict[str, Any]
    run_id: str = "run"


@dataclass
class Figure:
    """A table row: its label, where it lies in the bundle's metrics.json, and its chance level
    (from the task's data, or from a run's metrics where the bundle measures it)."""

    label: str
    path: tuple[str, ...]
    chance: Callable[[dict], float]


@dataclass
class Task:
    """A table section: the bundle, the runs per encoder (given its checkpoint) and the figures."""

    key: str
    name: str
    bundle: str
    steps: Callable[[str, Path], list[Step]]
    figures: list[Figure] = field(default_factory=list)


def parse_args(argv=None) -> argparse.Namespace:
    from reclf_monai.networks.untrained_baselines import BASELINES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="reclf_pretrain checkpoint (model.pt or checkpoint_epoch=E.pt)")
    parser.add_argument("--dataset_dir", required=True, help="IU-Phantom folder (datalist.json, zero-shot sets, masks)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="some of: zeroshot_five zeroshot_laterality relation_probe classification segmentation retrieval grounding (default: all)")
    parser.add_argument("--data_fraction", type=float, default=0.1, help="training labels for classification and segmentation")
    add_schedule_arguments(parser)
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=BASELINES,
                        help="untrained networks beside the checkpoint (default: imagenet random)")
    parser.add_argument("--noise_from", default=None,
                        help="an ablation report JSON (research/run_ablation.py): its seed-to-seed standard deviation for this aggregation becomes the noise column")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """The downstream schedule's options (SCHEDULE_OPTIONS), shared with research/run_ablation.py;
    None stands for the bundle's own default."""
    parser.add_argument("--classification_epochs", type=int, default=5)
    parser.add_argument("--segmentation_epochs", type=int, default=2)
    parser.add_argument("--classification_learning_rate", type=float, default=None, help="the linear head's (default: the bundle's)")
    parser.add_argument("--segmentation_learning_rate", type=float, default=None, help="the decoder's (default: the bundle's)")
    parser.add_argument("--segmentation_batch_size", type=int, default=None, help="the decoder's training batch (default: the bundle's, 16)")
    parser.add_argument("--segmentation_dice", choices=DICE_LOSSES, default=None,
                        help="the decoder's Dice loss: 'batch', one Dice over the batch's pixels, or 'image', per image and then averaged "
                             "like the metric (default: the bundle's, batch)")  # fmt: skip
    parser.add_argument("--eval_items", type=int, default=None, help="score classification/segmentation/grounding on N sampled test images")


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


def build_tasks(args: argparse.Namespace, datalist: Path) -> list[Task]:
    """The tasks; each task's steps take the checkpoint of the encoder they run for."""
    data = Path(args.dataset_dir).resolve()
    common = {"dataset_dir": str(data), "num_workers": args.num_workers}

    def whole_model(extra: dict[str, Any], run_id="run", evaluation="evaluate.json"):
        def steps(checkpoint: str, folder: Path) -> list[Step]:
            overrides = {**common, **extra, "pretrained_checkpoint": checkpoint, "output_dir": str(folder)}
            return [Step(["inference.json", evaluation], overrides, run_id)]

        return steps

    def trained_on_encoder(epochs: int, learning_rate: float | None, schedule: dict[str, Any] | None = None):
        """`schedule`: further training overrides by bundle id; those set to None keep the bundle's default."""

        def steps(checkpoint: str, folder: Path) -> list[Step]:
            shared = {**common, "datalist": str(datalist), "ckpt_dir": str(folder / "models")}
            train = {
                **shared, "pretrained_checkpoint": checkpoint, "data_fraction": args.data_fraction,
                **{key: value for key, value in {"learning_rate": learning_rate, **(schedule or {})}.items() if value is not None},
                "train#trainer#max_epochs": epochs, "val_interval": epochs, "output_dir": str(folder / "train"),
                "seed": args.seed,
                "overwrite": True,  # a task runs again only when its folder holds no finished run with these settings
            }
            evaluate = {**shared, "output_dir": str(folder)}
            return [Step(["train.json"], train), Step(["inference.json", "evaluate.json"], evaluate)]

        return steps

    five, laterality = data / "zeroshot_5xN.json", data / "zeroshot_laterality.json"
    laterality_files = {"zeroshot_datalist": str(laterality), "prompts_file": str(data / "prompts_laterality.json")}
    percent = f"{100 * args.data_fraction:g} %"
    return [
        Task("zeroshot_five", "zero-shot, five classes", "reclf_zeroshot_classification", whole_model({}),
             [Figure("macro AUC", ("zero_shot", "auc"), lambda _: 0.5),
              Figure("ACC", ("zero_shot", "acc"), lambda _: uniform_guess_accuracy(five))]),
        Task("zeroshot_laterality", "zero-shot, laterality", "reclf_zeroshot_classification", whole_model(laterality_files),
             [Figure("macro AUC", ("zero_shot", "auc"), lambda _: 0.5),
              Figure("ACC", ("zero_shot", "acc"), lambda _: uniform_guess_accuracy(laterality))]),
        Task("relation_probe", "relation probe", "reclf_zeroshot_classification", whole_model({}, evaluation="relation_probe.json"),
             [Figure("sides swapped, two findings: image to text", ("relation_probe", "two findings/image_to_text/sides swapped"), lambda _: 0.5),
              Figure("sides swapped, two findings: text to image", ("relation_probe", "two findings/text_to_image/sides swapped"), lambda _: 0.5),
              Figure("finding negated: image to text", ("relation_probe", "all/image_to_text/negated"), lambda _: 0.5)]),
        Task("classification", f"linear classification, {percent} labels", "reclf_classification",
             trained_on_encoder(args.classification_epochs, args.classification_learning_rate), [Figure("test macro AUC", ("test", "auc"), lambda _: 0.5)]),
        Task("segmentation", f"segmentation, {percent} labels", "reclf_segmentation",
             trained_on_encoder(args.segmentation_epochs, args.segmentation_learning_rate,
                                {"batch_size": args.segmentation_batch_size, "loss#batch": DICE_LOSSES.get(args.segmentation_dice)}),
             [Figure("test Dice, images with a finding", ("test", "dice_nonempty"), lambda _: 0.0),
              Figure("test mean Dice, all images", ("test", "mean_dice"), lambda _: empty_mask_dice(datalist))]),
        Task("retrieval", "retrieval, class match", "reclf_retrieval", whole_model({}, run_id="run_class_retrieval"),
             [Figure("P@5", ("class_retrieval", "P@5"), lambda _: random_ranking_precision(five))]),
        Task("grounding", "grounding", "reclf_grounding", whole_model({"eval_datalist": str(datalist)}),
             [Figure("pointing game", ("all", "pointing_game"), lambda metrics: metrics["all"]["region_fraction"])]),
    ]


# Chance levels, from the data the tasks score.


def uniform_guess_accuracy(zero_shot_datalist: Path) -> float:
    """The accuracy of naming one of the set's classes at random."""
    return 1.0 / len(json.loads(zero_shot_datalist.read_text())["class_names"])


def random_ranking_precision(zero_shot_datalist: Path) -> float:
    """A random ranking's class-match precision at any K: the mean over queries of the share of
    the set in the query's class."""
    targets = [item["target"] for item in json.loads(zero_shot_datalist.read_text())["test"]]
    return sum(targets.count(target) for target in targets) / len(targets) ** 2


def empty_mask_dice(datalist: Path) -> float:
    """The mean Dice of predicting no finding on every test image: 1 where the mask is empty too."""
    from reclf_monai.data import load_datalist
    from reclf_monai.data.mask_fraction import mask_is_nonempty

    masks = [item["label"] for item in load_datalist(datalist, "test", required_keys=["label"])]
    return 1.0 - sum(mask_is_nonempty(mask) for mask in masks) / len(masks)


def read_figure(metrics: dict, path: tuple[str, ...], source: Path) -> float:
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"{source}: no {'/'.join(path)} in the bundle's metrics")
        value = value[key]
    return float(value)


def checkpoint_identity(checkpoint: Path) -> dict[str, Any]:
    """Path, size and modification time: a file (checkpoint, datalist) rewritten at the same path is another one."""
    status = checkpoint.stat()
    return {"path": str(checkpoint.resolve()), "bytes": status.st_size, "modified_ns": status.st_mtime_ns}


def finished_record(record: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The content of `record` if it was written for `settings` (checkpoint files included); None
    when the work has to be done."""
    if record.exists():
        previous = json.loads(record.read_text())
        if previous.get("settings") == settings:
            return previous
    return None


def run_settings(task: Task, folder: Path, checkpoint: Path) -> dict[str, Any]:
    return {"checkpoint": checkpoint_identity(checkpoint), "runs": [step.__dict__ for step in task.steps(str(checkpoint), folder)]}


def baseline_checkpoint(baseline: str, args: argparse.Namespace, output_dir: Path) -> Path:
    """OUTPUT_DIR/baselines/BASELINE.pt for the checkpoint's network, written unless a finished one
    for the same checkpoint file, training images (the datalist file) and seed is there."""
    from reclf_monai.networks.untrained_baselines import write_baseline_checkpoint

    path = output_dir / "baselines" / f"{baseline}.pt"
    record = path.with_suffix(".json")
    datalist = Path(args.dataset_dir).resolve() / "datalist.json"
    settings = {"checkpoint": checkpoint_identity(Path(args.checkpoint)), "datalist": checkpoint_identity(datalist), "seed": args.seed}
    if path.exists() and finished_record(record, settings) is not None:
        print(f"[downstream] {COLUMNS[baseline]} baseline: {path}, written earlier for this checkpoint", flush=True)
        return path
    print(f"[downstream] {COLUMNS[baseline]} baseline: writing {path}", flush=True)
    write_baseline_checkpoint(args.checkpoint, baseline, path, datalist, seed=args.seed)
    record.write_text(json.dumps({"settings": settings}, indent=2))
    return path


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


def run_task(task: Task, encoder: str, folder: Path, checkpoint: Path) -> dict[str, Any]:
    """Run the task's steps for one encoder's checkpoint (or reuse a finished record with the same
    settings, checkpoint file included); the record: figures, chance levels, seconds."""
    settings = run_settings(task, folder, checkpoint)
    previous = finished_record(folder / RECORD, settings)
    if previous is not None and "chance" in previous:
        print(f"[downstream] {task.name} / {COLUMNS[encoder]}: reusing {folder / RECORD}", flush=True)
        return previous
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    for step in task.steps(str(checkpoint), folder):
        run_step(task.bundle, step)
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    figures = {figure.label: read_figure(metrics, figure.path, metrics_file) for figure in task.figures}
    record = {"settings": settings, "figures": figures, "chance": {figure.label: figure.chance(metrics) for figure in task.figures},
              "seconds": time.time() - start}
    (folder / RECORD).write_text(json.dumps(record, indent=2))
    print(f"[downstream] {task.name} / {COLUMNS[encoder]}: {figures} in {record['seconds']:.0f} s", flush=True)
    return record


def time_left(measured: dict[str, list[float]], remaining: list[str], unit: str) -> str:
    """How long the `remaining` runs take, by their kinds (a task; the ablation's cell kinds): each
    kind's mean measured seconds times its count; kinds not measured yet are named, and the figure
    is then a lower bound. `unit` names the runs ("runs", "cells")."""
    from reclf_monai.handlers.training_progress import duration_text

    if not remaining:
        return "none"
    known = sum(statistics.mean(measured[kind]) for kind in remaining if kind in measured)
    unmeasured = sorted({kind for kind in remaining if kind not in measured})
    if len(unmeasured) == len(set(remaining)):
        return f"unknown (no {unit.rstrip('s')} of the remaining kinds measured yet)"
    if unmeasured:
        return f"at least {duration_text(known)} (not measured yet: {', '.join(unmeasured)})"
    return f"about {duration_text(known)} ({len(remaining)} {unit if len(remaining) > 1 else unit.rstrip('s')})"


def root_cause(error: BaseException) -> str:
    """The innermost error of a chain: MONAI wraps a config's error in 'Failed to evaluate ...'."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"


# The difference and noise columns.
DIFFERENCE = "pretrained - best baseline"


def difference_to_best_baseline(row: dict, baselines: list[str]) -> float:
    """The pretrained figure minus the best baseline's (every figure here is better higher); NaN
    without a baseline or where a run failed."""
    values = [row[baseline] for baseline in baselines]
    if not values or math.isnan(row[PRETRAINED]) or any(math.isnan(value) for value in values):
        return math.nan
    return row[PRETRAINED] - max(values)


def seed_noise(report_file: Path, aggregation: str, args: argparse.Namespace) -> tuple[dict[tuple[str, str], list[float]], str]:
    """Per (task key, figure label), the figures of `aggregation`'s finished cells over the
    pretraining seeds of an ablation report (classification and segmentation at
    ``args.data_fraction``), and a sentence naming where they come from. A task whose
    SCHEDULE_OPTIONS the report's study ran otherwise than `args` gets no noise, and the sentence
    says so: another schedule's spread is not this table's."""
    report = json.loads(report_file.read_text())
    if "records" not in report:
        raise SystemExit(f"--noise_from {report_file}: not an ablation report (no 'records'); research/run_ablation.py writes one")
    study = report.get("study")

    def differing_options(task: str) -> list[str]:
        options = SCHEDULE_OPTIONS.get(task, ())
        if study is None:
            return list(options)
        return [option for option in options if study.get(option) != getattr(args, option)]

    values: dict[tuple[str, str], list[float]] = {}
    seeds, other_schedule = set(), {}
    for record in report["records"]:
        if record["mode"] != aggregation or record["status"] == "failed" or record["fraction"] not in (None, args.data_fraction):
            continue
        differing = differing_options(record["task"])
        if differing:
            other_schedule[record["task"]] = differing
            continue
        for label, value in record["figures"].items():
            values.setdefault((record["task"], label), []).append(float(value))
            seeds.add(record["seed"])
    if not values:
        raise SystemExit(f"--noise_from {report_file}: no finished cell of aggregation {aggregation!r} with this table's schedule to measure the noise from")
    host = report.get("machine", {})
    source = (f"seed-to-seed sd: sample standard deviation over {len(seeds)} pretraining seeds of `{aggregation}` "
              f"in {report_file.name} ({host.get('cpu', 'machine not recorded')}; its schedule is in the report)")
    if study is None and other_schedule:
        source += f"; no noise for {', '.join(sorted(other_schedule))}: the report does not record its downstream schedule"
    elif other_schedule:
        source += "; no noise where the report's study ran another schedule: " + "; ".join(
            f"{task} (other {', '.join(options)})" for task, options in sorted(other_schedule.items()))
    return values, source


def noise_of(values: list[float] | None) -> float:
    return statistics.stdev(values) if values and len(values) > 1 else math.nan


def cell_text(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def markdown_table(rows: list[dict], encoders: list[str]) -> str:
    noise = any("noise" in row for row in rows)
    columns = [COLUMNS[encoder] for encoder in encoders] + ["chance"] + ([DIFFERENCE] if len(encoders) > 1 else []) + (["seed-to-seed sd"] if noise else [])
    lines = ["| task | figure | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns)]
    for row in rows:
        cells = [f"{row[key]:.3f}" if not math.isnan(row[key]) else "failed" for key in [*encoders, "chance"]]
        if len(encoders) > 1:
            cells.append(cell_text(row["difference"], signed=True))
        if noise:
            cells.append(cell_text(row.get("noise", math.nan)))
        lines.append(f"| {row['task']} | {row['figure']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    try:
        import matplotlib
    except ImportError as error:
        raise SystemExit("the plots need matplotlib, which is not installed: pip install matplotlib (pinned in requirements.txt)") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_table(rows: list[dict], encoders: list[str], title: str, target: Path) -> None:
    """One group of bars per table row (one bar per encoder; the baselines grey), chance as a
    dashed line over each group, the seed-to-seed noise as the pretrained bar's error bar."""
    plt = pyplot()
    width = 0.8 / len(encoders)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2.0), 4.2))
    colours = {PRETRAINED: "tab:blue", "imagenet": "0.45", "random": "0.75"}
    for index, encoder in enumerate(encoders):
        positions = [position + (index - (len(encoders) - 1) / 2) * width for position in range(len(rows))]
        noise = [row.get("noise", math.nan) for row in rows]
        # no bar where the noise is unknown (NaN): matplotlib leaves it out, where 0 would claim none
        errors = noise if encoder == PRETRAINED and not all(map(math.isnan, noise)) else None
        axes.bar(positions, [row[encoder] for row in rows], width, yerr=errors, capsize=3, label=COLUMNS[encoder], color=colours.get(encoder))
    for position, row in enumerate(rows):
        if not math.isnan(row["chance"]):
            axes.hlines(row["chance"], position - 0.45, position + 0.45, colors="k", linestyles="dashed", label="chance" if position == 0 else None)
    axes.set_xticks(range(len(rows)), [f"{row['task']}\n{row['figure']}" for row in rows], fontsize=7, rotation=30, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    args = parse_args(argv)
    from reclf_monai.networks import pretraining_settings

    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = pretraining_settings(args.checkpoint)  # a clear error for a file that is no pretraining checkpoint
    noise, noise_source = (seed_noise(Path(args.noise_from), settings["aggregation"], args)
                           if args.noise_from else ({}, None))  # fmt: skip
    pyplot()  # fail now, not after the runs
    datalist = Path(args.dataset_dir).resolve() / "datalist.json"
    if args.eval_items:
        datalist = sampled_datalist(datalist, output_dir, args.eval_items, args.seed)
    tasks = build_tasks(args, datalist)
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
    encoders = [PRETRAINED, *args.baselines]
    checkpoints = {PRETRAINED: Path(args.checkpoint).resolve()}
    if tasks:
        checkpoints.update({baseline: baseline_checkpoint(baseline, args, output_dir) for baseline in args.baselines})

    rows, failures, measured = [], [], {}
    runs = [task.key for task in tasks for _ in encoders]
    for index, task in enumerate(tasks):
        results = {}
        for encoder in encoders:
            print(f"[downstream] ({index + 1}/{len(tasks)}) {task.name} / {COLUMNS[encoder]}", flush=True)
            start = time.time()
            try:
                results[encoder] = run_task(task, encoder, output_dir / task.key / encoder, checkpoints[encoder])
            except Exception as error:  # one failing task must not hide the others' results
                failures.append(f"{task.name} / {COLUMNS[encoder]}: {root_cause(error)}")
                print(f"[downstream] FAILED {task.name} / {COLUMNS[encoder]}: {root_cause(error)}", file=sys.stderr, flush=True)
                results[encoder] = {"figures": {}, "chance": {}}
            measured.setdefault(task.key, []).append(time.time() - start)
            done = sum(map(len, measured.values()))
            print(f"[downstream] {done}/{len(runs)} runs done; time left: {time_left(measured, runs[done:], 'runs')}", flush=True)
        for figure in task.figures:
            chances = [results[encoder]["chance"][figure.label] for encoder in encoders if figure.label in results[encoder]["chance"]]
            rows.append({"task": task.name, "task_key": task.key, "figure": figure.label,
                         **{encoder: results[encoder]["figures"].get(figure.label, float("nan")) for encoder in encoders},
                         "chance": chances[0] if chances else float("nan")})
            rows[-1]["difference"] = difference_to_best_baseline(rows[-1], args.baselines)
            if noise:
                rows[-1]["noise"] = noise_of(noise.get((task.key, figure.label)))

    table = markdown_table(rows, encoders) + (f"\n\n{noise_source}" if noise_source else "")
    (output_dir / "downstream_table.md").write_text(table + "\n")
    (output_dir / "downstream_table.json").write_text(json.dumps(
        {"checkpoint": str(Path(args.checkpoint).resolve()), "columns": {encoder: COLUMNS[encoder] for encoder in encoders},
         "baselines": {baseline: str(checkpoints[baseline]) for baseline in args.baselines if baseline in checkpoints},
         "settings": vars(args), "noise_source": noise_source, "rows": rows}, indent=2))
    if rows:
        plot_table(rows, encoders, f"{settings['aggregation']} checkpoint against untrained baselines", output_dir / "downstream_table.png")
    print(table)
    for failure in failures:
        print(f"[downstream] failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
