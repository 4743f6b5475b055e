"""Where one pretraining iteration spends its time, at the demo's CPU settings by default.

    python -m research.profile_pretraining_step [--batch_size 32] [--iterations 5] [--ops 15]
    python -m research.profile_pretraining_step --frozen_text_dropout --text_length_groups 1   # the earlier text encoder
    python -m research.profile_pretraining_step --frozen_cache_mb 1024   # an epoch after the first, with the cache

Builds the RECLF model as `reclf_pretrain` with `configs/cpu_schedule.json` does (EfficientNet-Lite0
from ImageNet with three stages frozen, or `--backbone resnet18 --image_weights none
--frozen_image_stages 0` as before 2026-12-06, at 128 px, all-MiniLM-L6-v2 with 4 frozen layers, embed_dim 128, 96 tokens, `reclf`), feeds it real
IU reports from the package's archive (tokenised as training does) and random images, and times
each part of a training step: image encoder, text encoder, pair scoring, loss, backward pass and
optimiser step. With `--frozen_cache_mb` the text encoder keeps its frozen layers' output, and
every report is seen once before the timed steps, as in every epoch after the first. Prints the
median over the timed iterations (after `--warmup` untimed ones) and, with `--ops N`, the N
operators that took the most time under ``torch.profiler``. The data loader
and the engine's handlers are left out: this is the model's own cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from scripts.host_description import cpu_summary

PARTS = ("image forward", "text forward", "pair scores", "loss", "backward", "optimizer step")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--image_weights", default="imagenet", help="imagenet or none")
    parser.add_argument("--frozen_image_stages", type=int, default=3)
    parser.add_argument("--embed_dim", type=int, default=128)
    parser.add_argument("--max_length", type=int, default=96)
    parser.add_argument("--freeze_text_layers", type=int, default=4)
    parser.add_argument("--aggregation", default="reclf")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations (each on new reports)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--ops", type=int, default=0, help="also list the N most expensive operators (torch.profiler)")
    parser.add_argument(
        "--text_length_groups", type=int, default=None, help="length groups of the text encoder (default: the encoder's; 1 = one padded pass)"
    )
    parser.add_argument(
        "--frozen_text_dropout", action="store_true", help="frozen text layers in train mode, with dropout (as before 26b6178)"
    )
    parser.add_argument(
        "--frozen_cache_mb", type=float, default=0.0, help="cache of the frozen text layers' output (MiB; 0: none), filled before timing"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be at least 1 and --warmup at least 0")
    return args


def report_batches(batch_size: int, count: int, max_length: int):
    """`count` batches of tokenised IU reports (input_ids, attention_mask), in archive order."""
    import torch

    from reclf_monai.data import TokenizeReportd
    from reclf_monai.data.iu_reports import iter_iu_reports
    from reclf_monai.data.report_text import compose_report

    tokenize = TokenizeReportd(max_length=max_length)
    needed = batch_size * count
    items = []
    for report in iter_iu_reports():
        text = compose_report(report.findings, report.impression)
        if text.strip():
            items.append(tokenize({"report": text}))
        if len(items) == needed:
            break
    if len(items) < needed:
        raise SystemExit(f"the IU archive holds {len(items)} reports with text, fewer than the {needed} asked for")
    return [
        (torch.stack([item["input_ids"] for item in batch]), torch.stack([item["attention_mask"] for item in batch]))
        for batch in (items[start : start + batch_size] for start in range(0, needed, batch_size))
    ]


def build_model(args: argparse.Namespace):
    from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder

    text_encoder = TextEncoder(
        embed_dim=args.embed_dim,
        freeze_layers=args.freeze_text_layers,
        max_length=args.max_length,
        frozen_cache_mb=args.frozen_cache_mb,
    )
    if args.text_length_groups is not None:
        text_encoder.length_groups = args.text_length_groups
    image_encoder = ImageEncoder(
        args.backbone, in_channels=1, embed_dim=args.embed_dim, img_size=args.image_size,
        image_weights=args.image_weights, frozen_stages=args.frozen_image_stages,
    )  # fmt: skip
    model = RECLFModel(image_encoder, text_encoder, args.aggregation)
    model.train()
    if args.frozen_text_dropout:
        for module in text_encoder.frozen_modules:
            module.train()
    return model


def time_step(model, loss_function, optimizer, image, input_ids, attention_mask) -> list[float]:
    """One training step; seconds spent in each of PARTS."""
    marks = [time.perf_counter()]
    image_features = model.encode_image(image)
    marks.append(time.perf_counter())
    text_features = model.encode_text(input_ids, attention_mask)
    marks.append(time.perf_counter())
    logits = model.contrastive_logits(image_features, text_features)
    marks.append(time.perf_counter())
    loss = loss_function(logits)
    marks.append(time.perf_counter())
    optimizer.zero_grad()
    loss.backward()
    marks.append(time.perf_counter())
    optimizer.step()
    marks.append(time.perf_counter())
    return [after - before for before, after in zip(marks, marks[1:])]


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from reclf_monai.losses import ContrastiveLoss

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batches = report_batches(args.batch_size, args.warmup + args.iterations, args.max_length)
    model = build_model(args)
    loss_function = ContrastiveLoss()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    images = torch.randn(args.batch_size, 1, args.image_size, args.image_size)
    if args.frozen_cache_mb:
        with torch.no_grad():  # every report seen once: the timed steps are those of a later epoch
            for input_ids, attention_mask in batches:
                model.encode_text(input_ids, attention_mask)
    print(
        f"[profile] {cpu_summary()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; batch "
        f"{args.batch_size}, {args.image_size} px, embed_dim {args.embed_dim}, {args.max_length} tokens, "
        f"{args.freeze_text_layers} frozen text layers{' (with dropout)' if args.frozen_text_dropout else ''}, "
        f"up to {model.text_encoder.length_groups} text length group(s), aggregation {args.aggregation}"
        + (f"; frozen layers' output cached ({args.frozen_cache_mb:g} MiB), reports seen before" if args.frozen_cache_mb else ""),
        flush=True,
    )
    timed = []
    for index, (input_ids, attention_mask) in enumerate(batches):
        seconds = time_step(model, loss_function, optimizer, images, input_ids, attention_mask)
        if index >= args.warmup:
            timed.append(seconds)
    medians = [statistics.median(column) for column in zip(*timed)]
    for part, seconds in zip(PARTS, medians):
        print(f"{part:<16}{seconds:>8.3f} s")
    print(f"{'iteration':<16}{statistics.median(sum(step) for step in timed):>8.3f} s (median of {len(timed)})")
    if args.ops:
        from torch.profiler import profile

        input_ids, attention_mask = batches[-1]
        with profile() as profiler:
            time_step(model, loss_function, optimizer, images, input_ids, attention_mask)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
