#!/usr/bin/env python
"""The aggregation ablation: every aggregation pretrained with several seeds under one compute
budget, every downstream task on each checkpoint, one report of mean ± standard deviation.

Why: one pretraining run per aggregation cannot tell the aggregations apart; the differences the
method claims must stand out of the seed-to-seed spread. So each aggregation (``--modes``, default
all of ``reclf_monai.networks.AGGREGATIONS``) is pretrained once per seed (``--seeds``, default
0 1 2) with the same schedule, data and settings, and only ``--aggregation`` and ``--seed``
differ. The schedule is PRETRAIN_SCHEDULE below (reclf_pretrain's configs/cpu_schedule.json,
the demo's); ``--epochs`` and ``--pretrain_override KEY=VALUE`` change it for every run alike.

Every pretraining run is reclf_pretrain's configs/train.json through ``monai.bundle.run`` in this
process, in OUTPUT_DIR/pretrain/MODE/seedS (checkpoints in models/, TensorBoard in eval/), with no
validation (``--val_interval`` past the last epoch: the downstream tasks evaluate). On its last
checkpoint the downstream bundles run through scripts/downstream_table.py's tasks, each in
OUTPUT_DIR/downstream/MODE/seedS/TASK: zero-shot five classes and laterality, class-match
retrieval P@1/5/10, the pointing game once; linear classification and segmentation (frozen
encoder) once per ``--fractions`` (default 1 % and 10 % of the training labels, the same
labelled subset for every run; 100 % took about 15 minutes per task and checkpoint on 2 cores, more
than the pretraining), in TASK_fFRACTION. Their training seed is the pretraining seed.
The pointing game needs a local scorer, so `global_only` has no grounding cell. Two reference
rows, the architecture of the first mode with a local scorer (first seed) untrained as
scripts/downstream_table.py writes its baselines, show what pretraining adds (downstream seed 0):
"ImageNet, not pretrained" (the backbone's ImageNet weights) and "random init" (random weights,
batch-norm statistics estimated on the training images); they lie in OUTPUT_DIR/downstream/imagenet
and .../random. A last row gives each figure's chance level, computed from the data as
downstream_table does.

Resumable: a finished cell is never recomputed. A pretraining cell is finished when its record
(pretrain_run.json: settings, wall time) matches the current settings and its
checkpoint_epoch=E.pt exists; otherwise the folder is removed and the run starts again from
scratch. (The bundle's ``--resume true`` continues from the last epoch's checkpoint, but not with
the same data order and random state as an uninterrupted run of that seed, so a cell's figures
would depend on whether it had been interrupted; on the two-epoch CPU schedule at most one epoch
is lost.) A downstream cell is finished when downstream_table's record matches, checkpoint file
(path, size, modification time) included, so a pretraining run done again is evaluated again.

``--report_only`` computes nothing: it writes the report from the cells finished so far (a
running or stopped study's figures; the others are "not run" and left out of the tables).

``--import_report JSON`` takes the cells recorded in an earlier report's JSON as finished (status
"imported"): seeds computed on another machine, or in run folders that are gone, join this
study without their checkpoints. The report must come from the same study (STUDY_KEYS: the
pretraining schedule and overrides, the downstream epochs and sample, the datalist's SHA-256),
else the run stops before computing anything. A pretraining cell is imported only together with
all its downstream cells (a downstream cell to compute needs the checkpoint); an imported cell
wins over a finished run folder of the same cell.

Progress: each cell is announced as "[ablation] cell i/N: ..." and followed by an estimate of
the time left (the mean time of the cells of the same kind, measured in this invocation or
recorded when a reused cell was computed, times the cells of that kind still to do; imported
cells and a ``--report_only`` run cost nothing). A cell that
fails is recorded with its root cause and the others go on; the exit status is then 1. At the end
``--report`` (default OUTPUT_DIR/results_ablation.md, beside the runs it reports) gets the command, the machine, the times, `reclf`
against the best pooling baseline per score (the mean of its differences paired by seed, with a
95 % t interval, see `comparison_rows`), each zero-shot task's AUC per class (finding type, side) and one
table per task (rows the modes, the two references and chance, cells "mean ± sample std
(n=seeds)"), beside it a .json of
every per-seed figure and a folder of PNG plots (one per task, modes side by side with error
bars; needs matplotlib).

    python -m research.run_ablation --dataset_dir demo_output/iu_phantom --output_dir runs/ablation \\
        --eval_items 200 --classification_epochs 3 --segmentation_epochs 1
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import shlex
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from reclf_monai.handlers.training_progress import duration_text
from scripts.downstream_table import (
    COLUMNS,
    LOCAL_SCORER_TASKS,
    RECORD,
    SCHEDULE_OPTIONS,
    Figure,
    Step,
    Task,
    add_schedule_arguments,
    baseline_checkpoint,
    build_tasks,
    finished_record,
    pyplot,
    root_cause,
    run_settings,
    run_step,
    run_task,
    sampled_datalist,
    time_left,
)
from scripts.host_description import cpu_model

ROOT = Path(__file__).resolve().parents[1]
# The CPU pretraining schedule, the demo's: reclf_pretrain's configs/cpu_schedule.json, passed as
# overrides. Paths, aggregation, seed and validation are set per run.
PRETRAIN_SCHEDULE: dict[str, Any] = json.loads((ROOT / "bundles" / "reclf_pretrain" / "configs" / "cpu_schedule.json").read_text())
EPOCHS_KEY = "train#trainer#max_epochs"
PER_RUN_KEYS = ("aggregation", "seed", "dataset_dir", "ckpt_dir", "output_dir", "val_interval", "bundle_root", "overwrite")
PRETRAIN_RECORD = "pretrain_run.json"
FRACTION_TASKS = ("classification", "segmentation")
# Zero-shot tasks: their per-class AUCs (from the bundle's probabilities CSV) get a table of their own.
PER_CLASS_TASKS = ("zeroshot_five", "zeroshot_laterality")
PROBABILITIES_FILE = "class_probabilities.csv"
RANDOM = COLUMNS["random"]
# The untrained reference rows, by row label: downstream_table's baseline each one evaluates.
REFERENCES = {COLUMNS["imagenet"]: "imagenet", RANDOM: "random"}
CHANCE = "chance"
# The comparison the method claims: relation modelling (CANDIDATE) against pooling without it.
CANDIDATE = "reclf"
POOLING_BASELINES = ("lse", "fixed_importance", "mean")
# What a cell's figures depend on besides its mode, seed, task and fraction (see study_settings).
# The downstream options are downstream_table's; a report written before an option existed ran
# the bundle's default, None, which .get() reads from it.
STUDY_KEYS = ("pretraining", *dict.fromkeys(option for options in SCHEDULE_OPTIONS.values() for option in options), "datalist_sha256")


@dataclass
class Cell:
    """One unit of work: a pretraining run (task "pretrain") or one downstream task on one
    checkpoint; `mode` is an aggregation or a key of REFERENCES."""

    mode: str
    seed: int
    task: str
    fraction: float | None = None

    @property
    def kind(self) -> str:
        """Cells of one kind take about the same time: the time-left estimate groups by it."""
        return self.task if self.fraction is None else f"{self.task}_f{self.fraction:g}"

    @property
    def key(self) -> tuple:
        """How a report's JSON records identify the cell."""
        return self.mode, self.seed, self.task, self.fraction

    def label(self) -> str:
        return f"{self.mode} seed {self.seed} {self.kind}"


def parse_args(argv=None) -> argparse.Namespace:
    from reclf_monai.networks import AGGREGATIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", required=True, help="IU-Phantom folder (datalist.json, zero-shot sets, masks)")
    parser.add_argument("--output_dir", required=True, help="every run's folder; a rerun reuses what it finished")
    parser.add_argument("--modes", nargs="+", default=list(AGGREGATIONS), choices=AGGREGATIONS, metavar="MODE", help=f"aggregations (default all: {' '.join(AGGREGATIONS)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1], help="training-label fractions for classification and segmentation")
    parser.add_argument("--epochs", type=int, default=None, help=f"pretraining epochs (default {PRETRAIN_SCHEDULE[EPOCHS_KEY]})")
    parser.add_argument("--pretrain_override", action="append", default=[], type=parse_override, metavar="KEY=VALUE", help="a reclf_pretrain setting for every run (VALUE read as JSON when it is JSON); repeatable")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="some of: zeroshot_five zeroshot_laterality relation_probe classification segmentation retrieval grounding (default: all)")
    add_schedule_arguments(parser)
    parser.add_argument("--num_workers", type=int, default=2, help="data-loading workers of the downstream bundles (pretraining: --pretrain_override num_workers=N)")
    parser.add_argument("--report", default=None, help="the report's .md (default OUTPUT_DIR/results_ablation.md; the committed docs/results_ablation.md is written only when named)")
    parser.add_argument("--report_only", action="store_true", help="compute nothing: write the report from the cells finished so far (the others are left out)")
    parser.add_argument("--import_report", action="append", default=[], metavar="JSON", help="an earlier report's JSON (same study settings) whose recorded cells count as finished, e.g. seeds run on another machine; repeatable")
    args = parser.parse_args(argv)
    args.report = args.report or str(Path(args.output_dir) / "results_ablation.md")
    args.pretrain_override = dict(args.pretrain_override)
    taken = sorted(set(args.pretrain_override) & set(PER_RUN_KEYS))
    if taken:
        parser.error(f"--pretrain_override cannot set {taken}: the runner sets them per run")
    args.modes, args.seeds, args.fractions = (list(dict.fromkeys(values)) for values in (args.modes, args.seeds, args.fractions))
    if any(not 0 < fraction <= 1 for fraction in args.fractions):
        parser.error("--fractions must lie in (0, 1]")
    return args


def parse_override(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE as JSON when it parses (numbers, true, null, lists), else the string."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"--pretrain_override {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def pretrain_settings(args: argparse.Namespace, cell: Cell, folder: Path) -> dict[str, Any]:
    """The bundle overrides of one pretraining run: the shared schedule, then this run's own keys."""
    settings = {**PRETRAIN_SCHEDULE, **args.pretrain_override}
    if args.epochs is not None:
        settings[EPOCHS_KEY] = args.epochs
    epochs = int(settings[EPOCHS_KEY])
    settings.update(
        dataset_dir=str(Path(args.dataset_dir).resolve()), aggregation=cell.mode, seed=cell.seed,
        val_interval=epochs + 1, ckpt_dir=str(folder / "models"), output_dir=str(folder / "eval"),
        overwrite=True,  # a cell is (re)computed only when its folder holds no finished run of it
    )  # fmt: skip
    return settings


def study_settings(args: argparse.Namespace) -> dict[str, Any]:
    """STUDY_KEYS of this invocation: the pretraining settings shared by every run, the downstream
    options that change figures and the datalist's digest (its paths are relative, so a copy
    prepared elsewhere with the same seed matches)."""
    shared = pretrain_settings(args, Cell("", 0, "pretrain"), Path())
    datalist = Path(args.dataset_dir) / "datalist.json"
    return {
        "pretraining": {key: value for key, value in shared.items() if key not in PER_RUN_KEYS},
        **{key: getattr(args, key) for key in STUDY_KEYS if key not in ("pretraining", "datalist_sha256")},
        "datalist_sha256": hashlib.sha256(datalist.read_bytes()).hexdigest() if datalist.exists() else None,
    }


def recorded_arguments(command: str) -> list[str]:
    """The arguments of a report's recorded command: what follows the runner, ``python -m
    research.run_ablation`` (or ``python scripts/run_ablation.py`` in reports written before)."""
    words = shlex.split(command)
    runner = next(index for index, word in enumerate(words) if word == "research.run_ablation" or word.endswith("run_ablation.py"))
    return words[runner + 1 :]


def imported_cells(args: argparse.Namespace, study: dict[str, Any], cells: list[Cell]) -> tuple[dict[tuple, dict[str, Any]], list[dict[str, Any]]]:
    """The planned cells that ``--import_report`` JSONs recorded as finished, by Cell.key, and a
    description of each report. Raises SystemExit naming the file when one cannot be read or
    comes from another study."""
    found, sources = {}, []
    for path in args.import_report:
        try:
            report = json.loads(Path(path).read_text())
            records, command = report["records"], report["command"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"--import_report {path}: not a run_ablation report JSON ({error})") from error
        recorded = report.get("study")
        if recorded is None:  # written before the study was recorded: its command says the settings, not the datalist
            recorded = {**study_settings(parse_args(recorded_arguments(command))), "datalist_sha256": study["datalist_sha256"]}
            print(f"[ablation] {path} does not record its datalist's digest: its settings are read from its command", flush=True)
        differing = [key for key in STUDY_KEYS if recorded.get(key) != study[key]]
        if differing:
            raise SystemExit(f"--import_report {path}: recorded with other study settings ({', '.join(differing)}); its cells are not this study's")
        for record in records:
            if record["status"] in ("computed", "reused", "imported"):
                found[(record["mode"], record["seed"], record["task"], record["fraction"])] = record
        sources.append({"path": str(path), "command": command, "machine": report.get("machine")})
    needs_checkpoint = {checkpoint_source(cell, args) for cell in cells if cell.task != "pretrain" and cell.key not in found}
    return {cell.key: found[cell.key] for cell in cells if cell.key in found and not (cell.task == "pretrain" and (cell.mode, cell.seed) in needs_checkpoint)}, sources


def checkpoint_source(cell: Cell, args: argparse.Namespace) -> tuple[str, int]:
    """The pretraining run (mode, seed) whose checkpoint a downstream cell evaluates; the reference
    rows take the architecture of reference_mode's first seed."""
    return (reference_mode(args.modes), args.seeds[0]) if cell.mode in REFERENCES else (cell.mode, cell.seed)


def last_checkpoint(folder: Path, settings: dict[str, Any]) -> Path:
    return folder / "models" / f"checkpoint_epoch={int(settings[EPOCHS_KEY])}.pt"


def finished_pretraining(settings: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """The record of a finished pretraining run in `folder` with these settings, else None."""
    record_file = folder / PRETRAIN_RECORD
    if record_file.exists() and last_checkpoint(folder, settings).exists():
        previous = json.loads(record_file.read_text())
        if previous.get("settings") == settings:
            return previous
    return None


def pretrain(args: argparse.Namespace, cell: Cell, folder: Path) -> tuple[str, dict[str, Any]]:
    """Reuse a finished pretraining run or do it from scratch; returns ("reused" or "computed",
    its record)."""
    settings, record_file = pretrain_settings(args, cell, folder), folder / PRETRAIN_RECORD
    previous = finished_pretraining(settings, folder)
    if previous is not None:
        return "reused", previous
    if folder.exists():  # a killed or older run: its checkpoints must not be taken for this one's
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    start = time.time()
    run_step("reclf_pretrain", Step(["train.json"], settings))
    checkpoint = last_checkpoint(folder, settings)
    if not checkpoint.exists():
        raise FileNotFoundError(f"pretraining finished without writing {checkpoint}")
    record = {"settings": settings, "checkpoint": str(checkpoint), "seconds": time.time() - start}
    record_file.write_text(json.dumps(record, indent=2))
    return "computed", record


def downstream_tasks(args: argparse.Namespace, fraction: float, seed: int, datalist: Path) -> dict[str, Task]:
    """downstream_table's tasks for one label fraction and training seed, by key; retrieval reports
    P@1, P@5 and P@10."""
    options = argparse.Namespace(**{**vars(args), "data_fraction": fraction, "seed": seed})
    tasks = {task.key: task for task in build_tasks(options, datalist)}
    chance = tasks["retrieval"].figures[0].chance  # a random ranking's precision is the same at any K
    tasks["retrieval"].figures = [Figure(f"P@{k}", ("class_retrieval", f"P@{k}"), chance) for k in (1, 5, 10)]
    return tasks


def reference_mode(modes: list[str]) -> str:
    """The mode whose architecture the reference rows take: the first with a local scorer (so every
    task is defined for it), else the first."""
    return next((mode for mode in modes if mode != "global_only"), modes[0])


def plan(args: argparse.Namespace, task_keys: list[str]) -> list[Cell]:
    """Every cell in the order they run: per mode and seed its pretraining, then its downstream
    tasks (those defined for the mode); the reference rows last."""

    def downstream(mode: str, seed: int) -> list[Cell]:
        architecture = reference_mode(args.modes) if mode in REFERENCES else mode
        keys = [key for key in task_keys if not (architecture == "global_only" and key in LOCAL_SCORER_TASKS)]
        return [Cell(mode, seed, key, fraction) for key in keys for fraction in (args.fractions if key in FRACTION_TASKS else [None])]

    cells = []
    for mode in args.modes:
        for seed in args.seeds:
            cells += [Cell(mode, seed, "pretrain"), *downstream(mode, seed)]
    return cells + [cell for reference in REFERENCES for cell in downstream(reference, 0)]


class Progress:
    """Announces cells and estimates the time left from the cells' times: measured in this
    invocation, or recorded when a reused or imported cell was computed (so a resumed study
    estimates at once). Cells in `settled` (imported: finished elsewhere) cost no time, and a
    `report_only` run computes nothing, so neither counts in the time left."""

    def __init__(self, cells: list[Cell], settled: Iterable[tuple] = (), report_only: bool = False):
        self.cells, self.measured = cells, {}
        self.settled, self.report_only = frozenset(settled), report_only

    def announce(self, index: int) -> None:
        print(f"[ablation] cell {index + 1}/{len(self.cells)}: {self.cells[index].label()} ...", flush=True)

    def finished(self, index: int, status: str, seconds: float | None, recorded_seconds: float | None = None) -> None:
        cell = self.cells[index]
        timed = recorded_seconds if status in ("reused", "imported") else seconds
        if timed is not None:
            self.measured.setdefault(cell.kind, []).append(timed)
        if status in ("reused", "imported"):
            print(f"[ablation] cell {index + 1}/{len(self.cells)}: {cell.label()}: {status}", flush=True)
        else:
            print(f"[ablation] cell {index + 1}/{len(self.cells)}: {cell.label()}: {status}" + (f" in {duration_text(seconds)}" if seconds is not None else ""), flush=True)
        print(f"[ablation] time left: {self.time_left(self.cells[index + 1:])}", flush=True)

    def time_left(self, remaining: list[Cell]) -> str:
        remaining = [cell for cell in remaining if cell.key not in self.settled]
        if remaining and self.report_only:
            return "none (--report_only computes nothing)"
        return time_left(self.measured, [cell.kind for cell in remaining], "cells")


def cell_record(
    cell: Cell, status: str, figures: dict[str, float | None], seconds: float | None, recorded_seconds: float | None,
    error: str | None = None, chance: dict[str, float] | None = None,
) -> dict[str, Any]:
    """What the report and its JSON keep of a cell; a failed cell's figures are None; `chance`:
    each figure's chance level, as downstream_table recorded it."""
    return {
        "mode": cell.mode, "seed": cell.seed, "task": cell.task, "fraction": cell.fraction, "status": status,
        "figures": figures, "chance": chance or {}, "seconds": seconds, "recorded_seconds": recorded_seconds, "error": error,
    }  # fmt: skip


def column(figure: str, fraction: float | None) -> str:
    return figure if fraction is None else f"{figure}, {100 * fraction:g} %"


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """task -> row (mode) -> column -> {"values": per-seed figures, "seeds": their seeds,
    "failed": failed seeds}, in the order the records name them; pretraining records carry no
    figures. A last row CHANCE holds {"chance": value} where the records give a finite one."""
    tables: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    chance: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        for figure, value in record["figures"].items():
            entry = tables.setdefault(record["task"], {}).setdefault(record["mode"], {})
            entry = entry.setdefault(column(figure, record["fraction"]), {"values": [], "seeds": [], "failed": 0})
            if value is None:
                entry["failed"] += 1
            else:
                entry["values"].append(value)
                entry["seeds"].append(record["seed"])
        for figure, value in (record.get("chance") or {}).items():
            if value is not None and math.isfinite(value):
                chance.setdefault(record["task"], {}).setdefault(column(figure, record["fraction"]), {"chance": value})
    for task, row in chance.items():
        if task in tables:
            tables[task][CHANCE] = row
    return tables


def format_cell(entry: dict[str, Any] | None) -> str:
    """"mean ± sample std (n=seeds)"; one value alone with n=1; "failed" when no seed finished;
    a chance level as its value."""
    if entry is None:
        return "-"
    if "chance" in entry:
        return f"{entry['chance']:.3f}"
    values, failed = entry["values"], entry["failed"]
    if not values:
        return "failed"
    note = f"n={len(values)}" + (f", {failed} failed" if failed else "")
    if len(values) == 1:
        return f"{values[0]:.3f} ({note})"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({note})"


def columns_of(rows: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    return list(dict.fromkeys(name for row in rows.values() for name in row))


def markdown_table(rows: dict[str, dict[str, dict[str, Any]]]) -> str:
    columns = columns_of(rows)
    lines = ["| mode | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for mode, row in rows.items():
        lines.append(f"| {mode} | " + " | ".join(format_cell(row.get(name)) for name in columns) + " |")
    return "\n".join(lines)


def paired_difference(candidate: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Candidate minus baseline on the seeds both finished (the same seed shares the data order and
    the downstream runs' seed, so pairing removes what the seed does to both): the differences,
    their mean and, from two pairs on, a 95 % Student t interval of the mean (n - 1 degrees of
    freedom)."""
    from scipy.stats import t as student_t

    by_seed = dict(zip(baseline["seeds"], baseline["values"]))
    differences = [value - by_seed[seed] for seed, value in zip(candidate["seeds"], candidate["values"]) if seed in by_seed]
    result: dict[str, Any] = {"differences": differences, "mean": statistics.mean(differences) if differences else math.nan, "interval": None}
    if len(differences) > 1:
        half_width = student_t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
        result["interval"] = (result["mean"] - half_width, result["mean"] + half_width)
    return result


def comparison_rows(tables: dict[str, dict[str, dict[str, dict[str, Any]]]], titles: dict[str, str]) -> list[dict[str, Any]]:
    """Per task and score: the best pooling baseline (highest mean of POOLING_BASELINES), reclf,
    their paired difference (`paired_difference`) and a verdict: "above"/"below" when its 95 %
    interval lies above/below 0, else "within the spread"; "fewer than two paired seeds" without
    an interval. Picking the best baseline on these same figures favours the baselines, so an
    "above" is a conservative call."""
    rows = []
    for task, modes in tables.items():
        for name in columns_of(modes):
            values = {mode: (modes.get(mode, {}).get(name) or {}).get("values", []) for mode in (*POOLING_BASELINES, CANDIDATE)}
            baselines = [mode for mode in POOLING_BASELINES if values[mode]]
            if not values[CANDIDATE] or not baselines:
                continue
            best = max(baselines, key=lambda mode: statistics.mean(values[mode]))
            paired = paired_difference(modes[CANDIDATE][name], modes[best][name])
            if not paired["differences"]:
                continue
            interval, verdict = paired["interval"], "fewer than two paired seeds"
            if interval is not None:
                verdict = "above" if interval[0] > 0 else "below" if interval[1] < 0 else "within the spread"
            rows.append({"task": titles.get(task, task), "figure": name, "baseline": best, "baseline_cell": modes[best][name],
                         "candidate_cell": modes[CANDIDATE][name], "difference": paired["mean"], "interval": interval,
                         "pairs": len(paired["differences"]), "verdict": verdict})  # fmt: skip
    return rows


def format_difference(row: dict[str, Any]) -> str:
    """"+0.060 [+0.035, +0.085] (n=3)": the mean paired difference, its 95 % interval, the pairs."""
    interval = "" if row["interval"] is None else f" [{row['interval'][0]:+.3f}, {row['interval'][1]:+.3f}]"
    return f"{row['difference']:+.3f}{interval} (n={row['pairs']})"


def comparison_section(rows: list[dict[str, Any]]) -> list[str]:
    """The report's answer to "does reclf beat the best pooling baseline": one line per score and a count."""
    if not rows:
        return []
    verdicts = ("above", "below", "within the spread", "fewer than two paired seeds")
    counts = {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in verdicts}
    lines = [
        "", f"## {CANDIDATE} against the best pooling baseline", "",
        f"Per score, the pooling baseline ({', '.join(POOLING_BASELINES)}) with the highest mean, and the mean of {CANDIDATE} "
        "minus it over the seeds both finished (paired by seed), with its 95 % Student t interval; \"above\"/\"below\" when "
        "the interval lies above/below 0, else \"within the spread\". The baseline is picked on these same figures, which "
        f"favours the baselines. {CANDIDATE} is above in {counts['above']}, below in {counts['below']} and within the spread in "
        f"{counts['within the spread']} of {len(rows)} scores"
        + (f" ({counts['fewer than two paired seeds']} with fewer than two paired seeds, no interval yet)" if counts["fewer than two paired seeds"] else "") + ".", "",
        f"| task | figure | best pooling baseline | {CANDIDATE} | difference [95 % interval] | verdict |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['figure']} | {row['baseline']}: {format_cell(row['baseline_cell'])} | "
            f"{format_cell(row['candidate_cell'])} | {format_difference(row)} | {row['verdict']} |"
        )
    return lines


def plot(task: str, title: str, rows: dict[str, dict[str, dict[str, Any]]], target: Path) -> None:
    """One group of bars per column, one bar per mode (mean, sample-std error bars; a failed or
    missing cell leaves a gap; the reference rows grey), chance as a dashed line over each group."""
    plt = pyplot()
    chance = rows.get(CHANCE, {})
    rows = {mode: row for mode, row in rows.items() if mode != CHANCE}
    columns = columns_of(rows)
    width = 0.8 / max(len(rows), 1)
    figure, axes = plt.subplots(figsize=(min(14.0, 3.0 + 0.2 * len(columns) * (len(rows) + 1)), 4.0))
    for index, (mode, row) in enumerate(rows.items()):
        means, errors = [], []
        for name in columns:
            values = (row.get(name) or {}).get("values", [])
            means.append(statistics.mean(values) if values else math.nan)
            errors.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        positions = [position + (index - (len(rows) - 1) / 2) * width for position in range(len(columns))]
        grey = {COLUMNS["imagenet"]: "0.4", RANDOM: "0.7"}.get(mode)
        axes.bar(positions, means, width, yerr=errors, capsize=3, label=mode, color=grey)
    for position, name in enumerate(columns):
        if name in chance:
            axes.hlines(chance[name]["chance"], position - 0.45, position + 0.45, colors="k", linestyles="dashed", label=CHANCE if position == 0 else None)
    axes.set_xticks(range(len(columns)), columns, fontsize=8, rotation=15)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("mean over seeds, bars: sample std")
    axes.set_title(title)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=100)
    plt.close(figure)


def per_class_section(records: list[dict[str, Any]], titles: dict[str, str]) -> list[str]:
    """One table per zero-shot task: each class's AUC per mode (mean ± std over seeds), to see
    which finding types or sides a mode gains or loses on."""
    per_class = [{**record, "figures": record["per_class"], "chance": {}} for record in records if record.get("per_class")]
    lines = []
    for task, rows in summarize(per_class).items():
        lines += ["", f"## {titles.get(task, task)}: AUC per class", "", markdown_table(rows)]
    return lines


def machine() -> dict[str, Any]:
    import monai
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "monai": monai.__version__}


def pretraining_times(records: list[dict[str, Any]]) -> str:
    """Per mode, the recorded seconds of its pretraining runs: the same epochs cost each
    aggregation a different time."""
    times: dict[str, list[str]] = {}
    for record in records:
        if record["task"] == "pretrain" and record["recorded_seconds"] is not None:
            times.setdefault(record["mode"], []).append(f"{record['recorded_seconds']:.0f}")
    return "; ".join(f"{mode} {', '.join(seconds)} s" for mode, seconds in times.items()) or "none"


def write_report(report: Path, header: dict[str, Any], wall: float, records: list[dict[str, Any]], titles: dict[str, str]) -> None:
    """The markdown report, its JSON (`header`: command, machine, study settings, imported
    reports; then the per-seed figures) and the plots folder beside it."""
    host = header["machine"]
    tables = summarize(records)
    plots = report.with_suffix("")
    computed = [record["seconds"] for record in records if record["seconds"] is not None]
    recorded = [record["recorded_seconds"] for record in records if record["recorded_seconds"] is not None]
    failed = [record for record in records if record["status"] == "failed"]
    reused = [record for record in records if record["status"] == "reused"]
    imported = [record for record in records if record["status"] == "imported"]
    not_run = [record for record in records if record["status"] == "not run"]
    lines = [
        "# Aggregation ablation", "",
        "Written by research/run_ablation.py (see its docstring for the protocol). Cells: mean ± sample standard "
        "deviation over the pretraining seeds (n = seeds that finished). The rows \"ImageNet, not pretrained\" and "
        "\"random init\" are the same networks untrained (ImageNet backbone weights; random weights with batch-norm "
        "statistics estimated on the training images; one run each, seed 0); \"chance\" is what a model that learnt "
        "nothing scores, computed from the data.", "",
        f"- command: `{header['command']}`",
        f"- machine: {host['cpu']}, {host['cores']} cores; torch {host['torch']}, monai {host['monai']}",
        f"- wall time of this invocation: {duration_text(wall)}; its {len(computed)} computed cells took {duration_text(sum(computed))}, "
        f"{len(reused)} cells were reused" + (f", {len(imported)} imported" if imported else "") + (f", {len(not_run)} cells are not run yet (left out of the tables)" if not_run else ""),
        f"- summed recorded time of all {len(recorded)} finished cells (reused and imported ones from earlier invocations, maybe on another machine): {duration_text(sum(recorded))}",
        f"- pretraining wall time per run (recorded): {pretraining_times(records)}",
    ]  # fmt: skip
    for source in header["imported_from"]:
        host_then = source["machine"] or {}
        lines.append(f"- imported cells from {source['path']}, written by `{source['command']}` on {host_then.get('cpu', 'an unrecorded machine')}, {host_then.get('cores', '?')} cores")
    lines += [f"- failed cells: {len(failed)}", ""]
    for record in failed:
        fraction = "" if record["fraction"] is None else f" at {100 * record['fraction']:g} %"
        lines.append(f"  - {record['mode']} seed {record['seed']} {record['task']}{fraction}: {record['error']}")
    lines += comparison_section(comparison_rows(tables, titles))
    lines += per_class_section(records, titles)
    for task, rows in tables.items():
        plot(task, titles.get(task, task), rows, plots / f"{task}.png")
        lines += ["", f"## {titles.get(task, task)}", "", markdown_table(rows), "", f"![{task}]({plots.name}/{task}.png)"]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    report.with_suffix(".json").write_text(json.dumps({**header, "wall_seconds": wall, "records": records}, indent=2))


def zero_shot_class_aucs(path: Path) -> dict[str, float]:
    """Each class's one-vs-rest AUC from a zero-shot run's probabilities CSV (image, true_class,
    predicted_class, then one column per class): what the macro AUC averages, per finding type or
    side."""
    import torch

    from reclf_monai.metrics import per_class_auc

    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        classes = [name for name in reader.fieldnames if name not in ("image", "true_class", "predicted_class")]
        rows = list(reader)
    probabilities = torch.tensor([[float(row[name]) for name in classes] for row in rows])
    targets = torch.tensor([[float(row["true_class"] == name) for name in classes] for row in rows])
    aucs = per_class_auc(probabilities, targets, classes)
    return {name: aucs[f"auc/{name}"] for name in classes if f"auc/{name}" in aucs}


def run_cell(args: argparse.Namespace, cell: Cell, checkpoints: dict[tuple[str, int], Path], datalist: Path) -> tuple[str, dict[str, Any]]:
    """Do (or reuse) one cell; returns its status and record. Raises when the cell fails. With
    ``--report_only`` a cell that is not finished is "not run" (no figures) instead."""
    output_dir = Path(args.output_dir).resolve()
    not_run = "not run", cell_record(cell, "not run", {}, None, None)
    if cell.task == "pretrain":
        folder = output_dir / "pretrain" / cell.mode / f"seed{cell.seed}"
        if args.report_only and finished_pretraining(pretrain_settings(args, cell, folder), folder) is None:
            return not_run
        start = time.time()
        status, record = pretrain(args, cell, folder)
        checkpoints[(cell.mode, cell.seed)] = Path(record["checkpoint"])
        return status, cell_record(cell, status, {}, time.time() - start if status == "computed" else None, record["seconds"])
    source = checkpoint_source(cell, args)
    if source not in checkpoints and args.report_only:
        return not_run
    if source not in checkpoints:
        raise RuntimeError(f"no checkpoint: pretraining {source[0]} seed {source[1]} failed")
    checkpoint, encoder = checkpoints[source], REFERENCES.get(cell.mode, "pretrained")
    if cell.mode in REFERENCES:  # the reference architecture untrained, as downstream_table writes it
        baselines = output_dir / "downstream" / encoder
        if args.report_only and not (baselines / "baselines" / f"{encoder}.pt").exists():
            return not_run
        options = argparse.Namespace(checkpoint=checkpoint, dataset_dir=args.dataset_dir, seed=0)
        checkpoint = baseline_checkpoint(encoder, options, baselines)
    task = downstream_tasks(args, cell.fraction or 1.0, cell.seed, datalist)[cell.task]
    folder = output_dir / "downstream" / REFERENCES.get(cell.mode, cell.mode) / f"seed{cell.seed}" / cell.kind
    previous = finished_record(folder / RECORD, run_settings(task, folder, checkpoint))
    if previous is not None:
        status, record = "reused", cell_record(cell, "reused", previous["figures"], None, previous.get("seconds"), chance=previous.get("chance"))
    elif args.report_only:
        return not_run
    else:
        start = time.time()
        recorded = run_task(task, encoder, folder, checkpoint)
        status, record = "computed", cell_record(cell, "computed", recorded["figures"], time.time() - start, recorded["seconds"], chance=recorded["chance"])
    if cell.task in PER_CLASS_TASKS:
        record["per_class"] = zero_shot_class_aucs(folder / PROBABILITIES_FILE)
    return status, record


def main(argv=None) -> int:
    start = time.time()
    args = parse_args(argv)
    pyplot()  # fail now, not after hours of pretraining
    command = shlex.join(["python", "-m", "research.run_ablation", *(sys.argv[1:] if argv is None else argv)])
    output_dir = Path(args.output_dir).resolve()
    (output_dir / "downstream").mkdir(parents=True, exist_ok=True)
    datalist = Path(args.dataset_dir).resolve() / "datalist.json"
    if args.eval_items:  # one sample for every cell: the same test images everywhere
        datalist = sampled_datalist(datalist, output_dir / "downstream", args.eval_items, 0)
    catalogue = downstream_tasks(args, 1.0, 0, datalist)
    task_keys = args.tasks or list(catalogue)
    unknown = sorted(set(task_keys) - set(catalogue))
    if unknown:
        raise SystemExit(f"unknown tasks {unknown}; choose from {list(catalogue)}")
    titles = {key: task.name.rsplit(", ", 1)[0] if key in FRACTION_TASKS else task.name for key, task in catalogue.items()}

    cells = plan(args, [key for key in catalogue if key in task_keys])
    study = study_settings(args)
    imported, sources = imported_cells(args, study, cells)
    progress, checkpoints, records = Progress(cells, imported, args.report_only), {}, []
    print(f"[ablation] {len(cells)} cells: modes {' '.join(args.modes)}, seeds {' '.join(map(str, args.seeds))}; output {output_dir}", flush=True)
    for index, cell in enumerate(cells):
        progress.announce(index)
        if cell.key in imported:
            records.append({**imported[cell.key], "status": "imported", "seconds": None, "error": None})
            progress.finished(index, "imported", None, records[-1]["recorded_seconds"])
            continue
        try:
            status, record = run_cell(args, cell, checkpoints, datalist)
        except Exception as error:  # one failing cell must not stop the others
            cause = root_cause(error)
            print(f"[ablation] FAILED {cell.label()}: {cause}", file=sys.stderr, flush=True)
            labels = [] if cell.task == "pretrain" else [figure.label for figure in catalogue[cell.task].figures]
            status, record = "failed", cell_record(cell, "failed", dict.fromkeys(labels), None, None, cause)
        records.append(record)
        progress.finished(index, status, record["seconds"], record["recorded_seconds"])

    report = Path(args.report).resolve()
    write_report(report, {"command": command, "machine": machine(), "study": study, "imported_from": sources}, time.time() - start, records, titles)
    failures = [record for record in records if record["status"] == "failed"]
    print(f"[ablation] report: {report} ({len(failures)} failed cells)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
