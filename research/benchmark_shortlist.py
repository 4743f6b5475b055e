#!/usr/bin/env python
"""Time exact all-pairs scoring against the global shortlist with local re-ranking, and compare their retrieval figures.

    flock /tmp/reclf_heavy.lock python -m research.benchmark_shortlist \\
        --checkpoint RUN/models/model.pt --datalist demo_output/iu_phantom/datalist.json \\
        --splits validation [--items N] [--class_datalist demo_output/iu_phantom/zeroshot_5xN.json] [--ks 10 20 50]

Loads a reclf_pretrain checkpoint (the network is built from the settings it carries), encodes the
first N (image, report) pairs of the splits (concatenated in the order given) once, then scores every
(image, report) pair with ``score_all_pairs`` exactly and with ``shortlist_k`` = each K. Prints, per
scoring, the wall time, the speed-up over exact, the share of pairs the local scorer saw, and
Recall@1/5/10 (identical reports count as matches; the mean of both directions) with its absolute
difference to exact. ``--class_datalist`` adds the class-match Precision@1/5/10 of the retrieval
bundle (its `test` split, each item's own report as text) in the same way. `max |diff|` is the
largest difference over every figure of the row, both directions included.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from reclf_monai.data import load_datalist, mark_duplicate_reports
from reclf_monai.metrics import encode_pairs, retrieval_recall_at_k, score_all_pairs
from reclf_monai.metrics.class_retrieval import class_retrieval_precision
from reclf_monai.networks import RECLFModel
from scripts.host_description import cpu_model

RECALL_KS = (1, 5, 10)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="reclf_pretrain model.pt or checkpoint_epoch=E.pt")
    parser.add_argument("--datalist", required=True, help="datalist with (image, report) pairs")
    parser.add_argument("--splits", nargs="+", default=["validation"], help="splits to take the pairs from, in this order")
    parser.add_argument("--items", type=int, default=0, help="the first N pairs of the splits (0: all)")
    parser.add_argument("--class_datalist", help="zeroshot_5xN.json-style datalist (test split, image + report + class) for Precision@K")
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 20, 50], help="shortlist sizes to compare with exact")
    parser.add_argument("--batch_size", type=int, default=32, help="encoding batch size")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser.parse_args(argv)


def compare(name: str, model: RECLFModel, items: list[dict], figures: Callable, letter: str, args) -> list[str]:
    """A markdown table: exact, then each shortlist size. `figures(logits)` gives the metric dict,
    whose `{letter}@K` entries (R or P) are shown."""
    started = time.perf_counter()
    image_features, text_features = encode_pairs(model, items, args.batch_size)
    print(f"{name}: encoded {len(items)} pairs in {time.perf_counter() - started:.1f} s", flush=True)
    shown = [f"{letter}@{k}" for k in RECALL_KS]
    header = ["set", "N", "scoring", "pairs scored", "time (s)", "speed-up", *(f"{key} (diff)" for key in shown), "max abs diff"]
    rows, exact, exact_time = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)], None, None
    for shortlist_k in [None, *args.ks]:
        started = time.perf_counter()
        logits = score_all_pairs(model, image_features, text_features, shortlist_k=shortlist_k)
        seconds = time.perf_counter() - started
        result = figures(logits)
        if exact is None:
            exact, exact_time = result, seconds
        scored = torch.isfinite(logits).float().mean().item()
        difference = max(abs(result[key] - exact[key]) for key in exact)
        cells = [f"{result[key]:.3f} ({result[key] - exact[key]:+.3f})" for key in shown]
        scoring = "exact" if shortlist_k is None else f"k = {shortlist_k}"
        row = [name, str(len(items)), scoring, f"{100 * scored:.1f} %", f"{seconds:.1f}", f"{exact_time / seconds:.1f}x"]
        rows.append("| " + " | ".join([*row, *cells, f"{difference:.3f}"]) + " |")
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = RECLFModel.from_checkpoint(args.checkpoint)
    print(f"{cpu_model()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"checkpoint {args.checkpoint}: aggregation {model.aggregation}", flush=True)
    pairs = [item for split in args.splits for item in load_datalist(args.datalist, split, required_keys=["image", "report"])]
    pairs = mark_duplicate_reports(pairs[: args.items or None])
    groups = torch.tensor([item["report_group"] for item in pairs])
    tables = [compare("+".join(args.splits), model, pairs, lambda logits: retrieval_recall_at_k(logits, RECALL_KS, groups), "R", args)]
    if args.class_datalist:
        items = load_datalist(args.class_datalist, "test", required_keys=["image", "report", "target"])
        classes = torch.tensor([item["target"] for item in items])
        precision = lambda logits: class_retrieval_precision(logits, classes, classes, RECALL_KS)  # noqa: E731
        tables.append(compare("class 5xN", model, items, precision, "P", args))
    for rows in tables:
        print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
