#!/usr/bin/env python
"""Learning curve of one pretraining run: validation figures against training wall-clock time.

Runs the reclf_pretrain bundle's trainer (``configs/train.json`` through ``monai.bundle``'s
ConfigParser, with the given overrides) and, before the first iteration, every ``--eval_every``
iterations and at the end, pauses the clock and scores the **validation split** (never the test
split, so the curves can be used to choose settings):

- ``val_zeroshot_auc``: multi-label zero-shot macro AUC over the validation images, each of the
  dataset's classes scored one-vs-rest by the mean pair logit over its prompts (``prompts.json``),
  over the classes that have both positive and negative validation images;
- ``val_R@1/5/10``: image-report Recall@K over the validation pairs (mean of both directions,
  identical reports counted as matches), scored as the bundle's validation scores them (its
  ``shortlist_k``: the global shortlist with local re-ranking, or exact all-pairs when null).

Writes OUTPUT_DIR/NAME/curve.json (settings, the points, wall times) and prints each point, and
at the end the trained network as OUTPUT_DIR/NAME/models/model.pt (weights and network settings,
as the bundle writes them: research/word_weights.py and the downstream bundles read it). A
finished curve with the same overrides is not run again. Training time excludes the evaluations.
``--summary`` trains nothing and prints every curve under OUTPUT_DIR as one markdown table.

    python -m research.learning_curve --dataset_dir demo_output/iu_phantom --output_dir runs/curves \\
        --name lr1e-3 -- --image_size 128 --learning_rate 0.001 --train#trainer#max_epochs 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_overrides(tokens: list[str]) -> dict:
    """``--key value`` pairs as the monai.bundle CLI takes them (values read as JSON when they parse)."""
    if len(tokens) % 2 or any(not key.startswith("--") for key in tokens[::2]):
        raise SystemExit(f"bundle overrides must be '--key value' pairs, got {tokens}")
    overrides = {}
    for key, value in zip(tokens[::2], tokens[1::2]):
        try:
            overrides[key[2:]] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key[2:]] = value
    return overrides


def validation_figures(parser, prompts: dict, class_names: list[str], loader) -> dict[str, float]:
    """Zero-shot multi-label macro AUC and Recall@K on the validation split (eval mode, no grad)."""
    import torch
    from monai.metrics import compute_roc_auc

    from reclf_monai.metrics import retrieval_recall_at_k
    from reclf_monai.metrics.contrastive_evaluation import (
        concat_feature_batches,
        detached_features,
        encode_class_prompts,
        score_all_pairs,
    )
    from reclf_monai.metrics.zero_shot import mean_over_prompts

    network, device = parser.get_parsed_content("network"), parser.get_parsed_content("device")
    was_training = network.training
    network.eval()
    images, texts, targets, groups = [], [], [], []
    with torch.no_grad():
        for batch in loader:
            images.append(detached_features(network.encode_image(batch["image"].to(device))))
            texts.append(detached_features(network.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))))
            targets.append(batch["target"].float())
            groups.append(torch.as_tensor(batch["report_group"]))
        image_features = concat_feature_batches(images)
        prompt_features, owners = encode_class_prompts(network, prompts, class_names, parser.get_parsed_content("tokenize"))
        class_scores = mean_over_prompts(score_all_pairs(network, image_features, prompt_features), owners, len(class_names))
        pair_logits = score_all_pairs(network, image_features, concat_feature_batches(texts), shortlist_k=parser.get_parsed_content("shortlist_k"))
    network.train(was_training)
    target = torch.cat(targets)
    scored = (target.sum(0) > 0) & (target.sum(0) < len(target))  # AUC needs positives and negatives
    if not scored.any():
        raise ValueError(f"no class of {class_names} has both positive and negative validation images; zero-shot AUC is undefined")
    figures = {"val_zeroshot_auc": float(compute_roc_auc(class_scores[:, scored], target[:, scored], average="macro"))}
    recall = retrieval_recall_at_k(pair_logits, (1, 5, 10), torch.cat(groups))
    figures.update({f"val_R@{k}": recall[f"R@{k}"] for k in (1, 5, 10)})
    return figures


def validation_loader(parser, dataset_dir: Path):
    """The validation pairs with their class targets and report groups, cached once."""
    from monai.data import CacheDataset, DataLoader
    from monai.transforms import Compose, SelectItemsd, ToTensord

    from reclf_monai.data import load_datalist, mark_duplicate_reports

    items = mark_duplicate_reports(load_datalist(dataset_dir / "datalist.json", "validation", required_keys=["image", "report", "target"]))
    transforms = list(parser.get_parsed_content("train#image_transforms").transforms) + [
        parser.get_parsed_content("tokenize"),
        ToTensord(keys="target", track_meta=False),
        SelectItemsd(keys=["image", "input_ids", "attention_mask", "target", "report_group"]),
    ]
    dataset = CacheDataset(items, Compose(transforms), num_workers=parser.get_parsed_content("num_workers"), progress=False)
    return DataLoader(dataset, batch_size=parser.get_parsed_content("val_batch_size"), shuffle=False)


def markdown_summary(output_dir: Path) -> str:
    """One row per point of every curve under `output_dir` (oldest curve first)."""
    lines = ["| run | overrides | iteration | epoch | training s | val zero-shot AUC | val R@1 | val R@5 | val R@10 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for curve_file in sorted(output_dir.glob("*/curve.json"), key=lambda path: path.stat().st_mtime):
        record = json.loads(curve_file.read_text())
        settings = " ".join(f"{key}={value}" for key, value in record["overrides"].items())
        for point in record["points"]:
            figures = " | ".join(f"{point[key]:.3f}" for key in ("val_zeroshot_auc", "val_R@1", "val_R@5", "val_R@10"))
            lines.append(f"| {record['name']} | {settings} | {point['iteration']} | {point['epoch']} | {point['train_seconds']:.0f} | {figures} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--dataset_dir", type=Path)
    cli.add_argument("--output_dir", type=Path, required=True)
    cli.add_argument("--name", help="run name: OUTPUT_DIR/NAME holds its curve and logs")
    cli.add_argument("--summary", action="store_true", help="print the curves under OUTPUT_DIR as a markdown table")
    cli.add_argument("--eval_every", type=int, default=42, help="iterations between validation points")
    args = cli.parse_args(argv[:split])
    if args.summary:
        print(markdown_summary(args.output_dir))
        return 0
    if args.dataset_dir is None or args.name is None:
        cli.error("--dataset_dir and --name are needed to run a curve")
    overrides = parse_overrides(argv[split + 1 :])
    run_dir = args.output_dir / args.name
    record_file = run_dir / "curve.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("overrides") == overrides and record.get("finished"):
            print(f"[curve] {args.name}: finished earlier ({record_file}); delete it to rerun")
            return 0

    from ignite.engine import Events
    from monai.bundle import ConfigParser

    from reclf_monai.networks import save_checkpoint

    bundle = ROOT / "bundles" / "reclf_pretrain"
    parser = ConfigParser()
    parser.read_config(bundle / "configs" / "train.json")
    parser.update(
        {"bundle_root": str(bundle), "dataset_dir": str(args.dataset_dir), "ckpt_dir": str(run_dir / "models"),
         "output_dir": str(run_dir / "eval"), "val_interval": 10**6, **overrides}
    )
    parser.get_parsed_content("initialize")
    trainer = parser.get_parsed_content("train#trainer")
    prompts = json.loads((args.dataset_dir / "prompts.json").read_text())
    class_names = json.loads((args.dataset_dir / "datalist.json").read_text())["class_names"]
    loader = validation_loader(parser, args.dataset_dir)
    record = {"name": args.name, "overrides": overrides, "eval_every": args.eval_every, "points": [], "finished": False}
    clock = {"start": None, "paused": 0.0}

    def add_point(engine) -> None:
        paused_at = time.perf_counter()
        train_seconds = 0.0 if clock["start"] is None else paused_at - clock["start"] - clock["paused"]
        point = {"iteration": engine.state.iteration, "epoch": engine.state.epoch, "train_seconds": round(train_seconds, 1)}
        point.update(validation_figures(parser, prompts, class_names, loader))
        record["points"].append(point)
        run_dir.mkdir(parents=True, exist_ok=True)
        record_file.write_text(json.dumps(record, indent=2))
        print("[curve] " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()), flush=True)
        clock["paused"] += time.perf_counter() - paused_at

    def start_clock(engine) -> None:
        add_point(engine)
        clock["start"], clock["paused"] = time.perf_counter(), 0.0

    trainer.add_event_handler(Events.STARTED, start_clock)
    trainer.add_event_handler(Events.ITERATION_COMPLETED(every=args.eval_every), add_point)
    trainer.add_event_handler(Events.COMPLETED, lambda engine: None if record["points"][-1]["iteration"] == engine.state.iteration else add_point(engine))
    trainer.run()
    final_model = run_dir / "models" / "model.pt"
    final_model.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(parser.get_parsed_content("network_def"), final_model)
    record["finished"] = True
    record["iterations_per_epoch"] = len(parser.get_parsed_content("train#dataloader"))
    record_file.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
