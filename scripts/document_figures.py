#!/usr/bin/env python
"""The demo's figures in the documents, written from one recorded run, never typed by hand.

README.md, docs/results.md, every bundle's docs/README.md and every bundle's metadata.json
``eval_metrics`` quote the demo's figures. Each document holds generated blocks between
``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->``; this script writes them, and the
``eval_metrics``, from docs/demo_run.json, the record of one demo run. So the same figure cannot
read 0.616 in one document and 0.641 in another, and a new run updates every document at once.

    python scripts/document_figures.py record demo_output --pretraining_seconds P --total_seconds T
        # what scripts/demo.sh calls at its end: demo_output/demo_run.json from the run's outputs
    python scripts/document_figures.py publish demo_output
        # that run becomes the documented one: docs/demo_run.json, docs/demo_table.png, every block
    python scripts/document_figures.py write
        # every block again from docs/demo_run.json (after a change to how blocks are written)
    python scripts/document_figures.py check
        # exit status 1, naming each document whose figures disagree with docs/demo_run.json

Blocks: ``demo-table`` (the downstream table with chance, the difference to the best baseline and
the seed-to-seed noise), ``demo-time`` (one sentence: the machine and the wall times),
``demo-goals`` (the demo's goals, reached or not) and ``bundle:NAME`` (the table's rows that
bundle computes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python scripts/document_figures.py`
    sys.path.insert(0, str(ROOT))

from scripts.downstream_table import PRETRAINED, markdown_table  # noqa: E402
from scripts.host_description import cpu_model  # noqa: E402

RUN = ROOT / "docs" / "demo_run.json"
PLOT = ROOT / "docs" / "demo_table.png"
BUNDLES = ROOT / "bundles"
# The bundle that computes each task of the downstream table.
TASK_BUNDLES = {
    "zeroshot_five": "reclf_zeroshot_classification", "zeroshot_laterality": "reclf_zeroshot_classification",
    "relation_probe": "reclf_zeroshot_classification", "classification": "reclf_classification",
    "segmentation": "reclf_segmentation", "retrieval": "reclf_retrieval", "grounding": "reclf_grounding",
}  # fmt: skip
# The pretraining bundle's eval_metrics: what its model scores with no training downstream.
PRETRAIN_TASKS = ("zeroshot_five", "zeroshot_laterality", "retrieval", "grounding")
# The demo's goals: (task key, figure, target, whether the target is a multiple of the chance level).
GOALS = [
    ("zeroshot_five", "macro AUC", 0.80, False), ("zeroshot_laterality", "macro AUC", 0.70, False),
    ("classification", "test macro AUC", 0.80, False), ("segmentation", "test Dice, images with a finding", 0.35, False),
    ("grounding", "pointing game", 5.0, True),
]  # fmt: skip
TIME_GOAL_SECONDS = 600
# Which blocks each document must hold (a block deleted by hand is an error, not a silent gap).
REQUIRED_BLOCKS = {
    "README.md": ["demo-time", "demo-table"],
    "docs/results.md": ["demo-time", "demo-table", "demo-goals"],
    **{f"bundles/{name}/docs/README.md": [f"bundle:{name}"] for name in sorted(set(TASK_BUNDLES.values()))},
}
BLOCK = re.compile(r"(<!-- figures:(?P<name>[\w:-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.DOTALL)


def record(demo_output: Path, pretraining_seconds: float, total_seconds: float) -> Path:
    """DEMO_OUTPUT/demo_run.json: the downstream table, each task's metrics.json for the pretrained
    model, the machine and the wall times."""
    import monai
    import torch

    table = json.loads((demo_output / "downstream" / "downstream_table.json").read_text())
    tasks = {row["task_key"] for row in table["rows"]}
    run = {
        "command": "bash scripts/demo.sh",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "monai": monai.__version__},
        "seconds": {"pretraining": round(pretraining_seconds), "total": round(total_seconds)},
        "columns": table["columns"],
        "noise_source": table.get("noise_source"),
        "rows": table["rows"],
        "bundle_metrics": {task: json.loads((demo_output / "downstream" / task / PRETRAINED / "metrics.json").read_text()) for task in sorted(tasks)},
    }  # fmt: skip
    target = demo_output / "demo_run.json"
    target.write_text(json.dumps(run, indent=2) + "\n")
    return target


def figure_key(row: dict) -> str:
    """The eval_metrics name of a table row, e.g. iu_phantom_zeroshot_five_macro_auc."""
    return "iu_phantom_" + re.sub(r"[^a-z0-9]+", "_", f"{row['task_key']} {row['figure']}".lower()).strip("_")


def time_sentence(run: dict) -> str:
    host, seconds = run["machine"], run["seconds"]
    return (f"Measured by `{run['command']}` on {run['date']}, {host['cpu']}, {host['cores']} cores, CPU only (torch {host['torch']}, "
            f"monai {host['monai']}): {seconds['total']} s in all with `.venv` and IU-Phantom already there, "
            f"of which pretraining {seconds['pretraining']} s and the downstream table, the gallery and start-up {seconds['total'] - seconds['pretraining']} s.")


def table_block(run: dict, rows: list[dict]) -> str:
    encoders = list(run["columns"])
    lines = [markdown_table(rows, encoders)]
    if run.get("noise_source"):
        lines += ["", run["noise_source"] + "."]
    return "\n".join(lines)


def goals_block(run: dict) -> str:
    """One line per goal: the target, the pretrained figure and whether it reaches the target."""
    rows = {(row["task_key"], row["figure"]): row for row in run["rows"]}
    lines = ["| goal | target | demo | reached |", "|---|---:|---:|---|"]
    for task, label, target, of_chance in GOALS:
        row = rows.get((task, label))
        if row is None:
            lines.append(f"| {task}: {label} | {target:g}{' x chance' if of_chance else ''} | not run | no |")
            continue
        value = row[PRETRAINED] / row["chance"] if of_chance else row[PRETRAINED]
        shown = f"{value:.1f} x chance ({row[PRETRAINED]:.3f})" if of_chance else f"{value:.3f}"
        target_text = f"{target:g} x chance" if of_chance else f"{target:.2f}"
        lines.append(f"| {row['task']}: {label} | {target_text} | {shown} | {'yes' if value >= target else '**no**'} |")
    total = run["seconds"]["total"]
    cores = run["machine"]["cores"]
    lines.append(f"| pretraining and downstream on {cores} CPU cores | {TIME_GOAL_SECONDS} s | {total} s | {'yes' if total <= TIME_GOAL_SECONDS else '**no**'} |")
    return "\n".join(lines)


def render_block(name: str, run: dict) -> str:
    if name == "demo-goals":
        return goals_block(run)
    if name == "demo-table":
        return table_block(run, run["rows"])
    if name == "demo-time":
        return time_sentence(run)
    if name.startswith("bundle:"):
        bundle = name.split(":", 1)[1]
        rows = [row for row in run["rows"] if TASK_BUNDLES[row["task_key"]] == bundle]
        if not rows:
            raise SystemExit(f"block {name}: the recorded run has no figure computed by {bundle}")
        return table_block(run, rows) + "\n\n" + time_sentence(run)
    raise SystemExit(f"unknown figures block {name!r}; known: demo-table, demo-time, demo-goals, bundle:NAME")


def rendered_document(text: str, run: dict, document: str) -> str:
    """`text` with every block rewritten; an error names a required block that is missing."""
    found = [match.group("name") for match in BLOCK.finditer(text)]
    missing = [name for name in REQUIRED_BLOCKS.get(document, []) if name not in found]
    if missing:
        raise SystemExit(f"{document}: no figures block {', '.join(missing)} (<!-- figures:NAME --> ... <!-- /figures:NAME -->)")
    return BLOCK.sub(lambda match: match.group(1) + render_block(match.group("name"), run) + "\n" + match.group(4), text)


def eval_metrics(run: dict, bundle: str) -> dict[str, float]:
    """The pretrained model's figures that `bundle` computes (for reclf_pretrain: the tasks its
    model scores untouched), rounded to the table's three decimals."""
    tasks = PRETRAIN_TASKS if bundle == "reclf_pretrain" else [task for task, owner in TASK_BUNDLES.items() if owner == bundle]
    return {figure_key(row): round(row[PRETRAINED], 3) for row in run["rows"] if row["task_key"] in tasks and not math.isnan(row[PRETRAINED])}


def expected_files(run: dict) -> dict[Path, str]:
    """Every documented file as it should read for `run`."""
    files = {}
    for document in REQUIRED_BLOCKS:
        path = ROOT / document
        files[path] = rendered_document(path.read_text(), run, document)
    for metadata_file in sorted(BUNDLES.glob("*/configs/metadata.json")):
        metadata = json.loads(metadata_file.read_text())
        metadata["eval_metrics"] = eval_metrics(run, metadata_file.parents[1].name)
        files[metadata_file] = json.dumps(metadata, indent=4, ensure_ascii=False) + "\n"
    return files


def load_run(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"{path}: no recorded demo run (scripts/demo.sh writes DEMO_OUTPUT/demo_run.json; publish it with `publish DEMO_OUTPUT`)")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    recording = commands.add_parser("record", help="DEMO_OUTPUT/demo_run.json from a finished demo run")
    recording.add_argument("demo_output", type=Path)
    recording.add_argument("--pretraining_seconds", type=float, required=True)
    recording.add_argument("--total_seconds", type=float, required=True)
    publishing = commands.add_parser("publish", help="make DEMO_OUTPUT's recorded run the documented one and write every document")
    publishing.add_argument("demo_output", type=Path)
    commands.add_parser("write", help="rewrite every block and eval_metrics from docs/demo_run.json as it is")
    commands.add_parser("check", help="exit 1 if a document disagrees with docs/demo_run.json")
    args = parser.parse_args(argv)

    if args.command == "record":
        print(f"[figures] recorded {record(args.demo_output, args.pretraining_seconds, args.total_seconds)}")
        return 0
    if args.command == "publish":
        source = args.demo_output / "demo_run.json"
        load_run(source)  # a clear error where the demo did not finish
        shutil.copyfile(source, RUN)
        shutil.copyfile(args.demo_output / "downstream" / "downstream_table.png", PLOT)
    run = load_run(RUN)
    stale = [path for path, content in expected_files(run).items() if path.read_text() != content]
    if args.command == "check":
        for path in stale:
            print(f"[figures] {path.relative_to(ROOT)} disagrees with {RUN.relative_to(ROOT)}: run `python scripts/document_figures.py write`"
                  " (blocks are generated: edit this script or publish another run, not the block)", file=sys.stderr)
        return 1 if stale else 0
    for path, content in expected_files(run).items():
        if path in stale:
            path.write_text(content)
            print(f"[figures] wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
