"""Print evaluation reports (metrics.json written by the reclf_pretrain evaluate workflow) as one table.

    python scripts/summarize_metrics.py "untrained=RUN_A/eval/metrics.json" "RECLF=RUN_B/eval/metrics.json"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = [
    ("zero_shot", "auc", "zero-shot AUC"),
    ("zero_shot", "acc", "zero-shot ACC"),
    ("validation", "R@1", "R@1"),
    ("validation", "R@5", "R@5"),
    ("validation", "R@10", "R@10"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=PATH pairs, PATH a metrics.json")
    args = parser.parse_args(argv)
    rows = []
    for run in args.runs:
        name, _, path = run.partition("=")
        if not path:
            parser.error(f"expected NAME=PATH, got {run!r}")
        if not Path(path).is_file():
            parser.error(f"{path}: metrics file not found")
        report = json.loads(Path(path).read_text())
        rows.append([name] + [f"{report.get(section, {}).get(key, float('nan')):.3f}" for section, key, _ in COLUMNS])
    header = ["model"] + [title for _, _, title in COLUMNS]
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths]] + rows:
        print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
