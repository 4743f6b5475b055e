"""Time the all-pairs local scorer against GLoRIA's per-report loop, at GLoRIA's scale.

    flock /tmp/reclf_heavy.lock python -m research.benchmark_local_matching [--batch_size 48] [--repeats 3]

Each variant runs in its own process on identical random inputs (B images of grid x grid region
features, B reports of varied length, D-dimensional) and times forward + backward of the symmetric
InfoNCE local loss:

- `reference`: GLoRIA's local similarity, one report at a time, contexts materialised
  (research/gloria_reference.py);
- `lse`, `mean`, `fixed_importance`, `srm`, `irm`, `reclf`: LocalMatching with that aggregation.

Memory is the growth of the process's peak resident set size (getrusage ru_maxrss) from just
before the first forward pass to the end: what the scorer and its backward pass add on top of
the inputs, allocator caching included. On a CPU a second figure, the peak of live tensors
(torch.profiler's memory records, one extra untimed pass), leaves out what the allocator and the
math libraries keep and says what the scorer itself holds. On a GPU (`--device cuda`, the default `auto` picks it
when torch sees one) it is the growth of ``torch.cuda.max_memory_allocated`` over the same span,
and times are taken after ``torch.cuda.synchronize()``. `--rounds N` runs every variant N times,
interleaved, and reports medians (ratios per round, then their median and range).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scripts.host_description import cpu_summary

VARIANTS = ("reference", "lse", "mean", "fixed_importance", "srm", "irm", "reclf")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=48)
    parser.add_argument("--embed_dim", type=int, default=768)
    parser.add_argument("--grid", type=int, default=19, help="regions per side (GLoRIA: 19 at 299 px)")
    parser.add_argument("--max_tokens", type=int, default=97, help="padded report length T")
    parser.add_argument("--min_words", type=int, default=10, help="shortest report, in words")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each fast variant (after one warm-up)")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="rounds of every variant (one process each, variants interleaved, so slow drifts of a shared machine hit all "
        "alike); times and ratios are medians over rounds, memory the largest",
    )
    parser.add_argument("--reference_repeats", type=int, default=1, help="timed runs of the slow reference")
    parser.add_argument(
        "--memory_budget_mb", type=float, default=512.0, help="LocalMatching block budget (default: the model's)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="auto", help="auto (cuda when torch sees a GPU, else cpu), cpu, cuda or cuda:N")
    parser.add_argument("--variants", nargs="+", default=["reference", "lse", "reclf"], choices=VARIANTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def resolve_device(name: str):
    """The torch device for `--device`; an error that says why when CUDA was asked for and is absent."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: this torch ({torch.__version__}) sees no CUDA device")
    return device


def peak_live_tensors_mb(step) -> float:
    """Peak MiB of CPU tensors alive while `step()` runs, from torch.profiler's memory records.

    Each operator's allocations net of its own frees count at its start, frees outside operators
    when they happen; scratch an operator frees before it returns is not seen. Unlike the RSS,
    memory kept by the allocator or the math libraries is not counted.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    changes = sorted((event.time_range.start, event.self_cpu_memory_usage) for event in profiler.events())
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return peak / 2**20


class PeakMemory:
    """Peak memory growth in MiB from construction on: host RSS, or the GPU's allocated memory."""

    def __init__(self, device):
        import torch

        self.cuda = torch.cuda if device.type == "cuda" else None
        if self.cuda:
            self.cuda.synchronize(device)
            self.cuda.reset_peak_memory_stats(device)
            self.device, self.start = device, self.cuda.memory_allocated(device)
        else:
            self.start = peak_rss_mb()

    def growth_mb(self) -> float:
        if self.cuda:
            return (self.cuda.max_memory_allocated(self.device) - self.start) / 2**20
        return peak_rss_mb() - self.start

    def synchronize(self) -> None:
        if self.cuda:
            self.cuda.synchronize(self.device)


def run_worker(args) -> dict:
    """Time one variant in this process; return its figures."""
    import torch

    from reclf_monai.losses import SymmetricInfoNCE
    from reclf_monai.networks import LocalMatching
    from research.gloria_reference import gloria_local_similarity

    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    batch, tokens = args.batch_size, args.max_tokens
    patches = torch.randn(batch, args.grid**2, args.embed_dim, generator=generator)
    words = torch.randn(batch, tokens, args.embed_dim, generator=generator)
    # [CLS] w_1 .. w_n [SEP] [PAD]...: n words, the longest report filling all T positions
    lengths = torch.randint(args.min_words, tokens - 1, (batch,), generator=generator)
    lengths[0] = tokens - 2
    positions = torch.arange(tokens)
    word_mask = (positions >= 1) & (positions <= lengths[:, None])
    importance = torch.rand(batch, tokens, generator=generator)
    device = resolve_device(args.device)
    patches, words, word_mask, importance = (tensor.to(device) for tensor in (patches, words, word_mask, importance))
    loss_function = SymmetricInfoNCE()
    temp3 = 10.0  # GLoRIA's local logit scale; 1 / tau_local for the other aggregations

    if args.worker == "reference":
        scorer = gloria_local_similarity
        repeats, warm_ups = args.reference_repeats, 0
    else:
        torch.manual_seed(args.seed)
        scorer = LocalMatching(
            args.embed_dim,
            args.worker,
            memory_budget_mb=args.memory_budget_mb,
        ).to(device)
        repeats, warm_ups = args.repeats, 1

    def forward(features):
        if args.worker == "reference":
            return loss_function(temp3 * scorer(*features, word_mask))
        return loss_function(temp3 * scorer(*features, word_mask, importance))

    def fresh_inputs():
        return [patches.clone().requires_grad_(), words.clone().requires_grad_()]

    memory = PeakMemory(device)
    forward_times, total_times = [], []
    for run in range(warm_ups + repeats):
        features = fresh_inputs()
        memory.synchronize()
        start = time.perf_counter()
        loss = forward(features)
        memory.synchronize()
        forward_end = time.perf_counter()
        loss.backward()
        memory.synchronize()
        end = time.perf_counter()
        if run >= warm_ups:
            forward_times.append(forward_end - start)
            total_times.append(end - start)
        loss_value = loss.item()
        # Freed before the next run, so the peak is one pass's, not one pass plus the last one's inputs and gradients.
        del features, loss
    peak_growth_mb = memory.growth_mb()
    tensors_mb = None
    if device.type == "cpu":
        features = fresh_inputs()  # outside the profiled pass, as the timed passes' inputs are
        tensors_mb = peak_live_tensors_mb(lambda: forward(features).backward())
    return {
        "variant": args.worker,
        "loss": loss_value,
        "forward_s": statistics.median(forward_times),
        "total_s": statistics.median(total_times),
        "runs": repeats,
        "peak_memory_growth_mb": peak_growth_mb,
        "peak_live_tensors_mb": tensors_mb,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_summary(),
        "memory_kind": "GPU max_memory_allocated" if device.type == "cuda" else "peak RSS",
    }


def over_rounds(figures: list[dict]) -> dict:
    """One variant's figures from several rounds: median times, summed runs, the largest memory."""
    combined = dict(figures[0])
    for key in ("forward_s", "total_s"):
        combined[key] = statistics.median(figure[key] for figure in figures)
    combined["runs"] = sum(figure["runs"] for figure in figures)
    for key in ("peak_memory_growth_mb", "peak_live_tensors_mb"):
        if combined[key] is not None:
            combined[key] = max(figure[key] for figure in figures)
    return combined


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    forwarded = list(argv if argv is not None else sys.argv[1:])
    rounds = []
    for round_number in range(1, args.rounds + 1):
        figures = {}
        for variant in args.variants:
            command = [sys.executable, "-m", __spec__.name, *forwarded, "--worker", variant]
            completed = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
            if completed.returncode != 0:
                print(completed.stderr, file=sys.stderr)
                return completed.returncode
            figures[variant] = json.loads(completed.stdout.strip().splitlines()[-1])
            print(f"  finished {variant} (round {round_number} of {args.rounds})", file=sys.stderr, flush=True)
        rounds.append(figures)
    results = {variant: over_rounds([figures[variant] for figures in rounds]) for variant in args.variants}

    def time_ratio(numerator: str, denominator: str) -> str:
        """Median over rounds of the per-round ratio, with its range when there are several rounds."""
        ratios = [figures[numerator]["total_s"] / figures[denominator]["total_s"] for figures in rounds]
        spread = f" (rounds: {min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
        return f"{statistics.median(ratios):.2f}x{spread}"

    print(
        f"local loss forward + backward, B={args.batch_size} D={args.embed_dim} regions={args.grid}x{args.grid} "
        f"T={args.max_tokens} (reports of {args.min_words}..{args.max_tokens - 2} words), "
        f"memory budget {args.memory_budget_mb:g} MiB, {args.rounds} round(s), "
        f"{results[args.variants[0]]['threads']} torch threads, {results[args.variants[0]]['device']}"
    )
    memory_kind = results[args.variants[0]]["memory_kind"]
    on_cpu = results[args.variants[0]]["peak_live_tensors_mb"] is not None
    tensors_header = f"{'peak live tensors MiB':>24}" if on_cpu else ""
    print(f"{'variant':<18}{'fwd s':>9}{'fwd+bwd s':>11}{'runs':>6}{'loss':>12}{memory_kind + ' +MiB':>30}{tensors_header}")
    for name, result in results.items():
        tensors = f"{result['peak_live_tensors_mb']:>24.0f}" if on_cpu else ""
        print(
            f"{name:<18}{result['forward_s']:>9.2f}{result['total_s']:>11.2f}{result['runs']:>6}"
            f"{result['loss']:>12.6f}{result['peak_memory_growth_mb']:>30.0f}{tensors}"
        )
    if "reference" in results and "lse" in results:
        reference, lse = results["reference"], results["lse"]
        relative = abs(lse["loss"] - reference["loss"]) / abs(reference["loss"])
        print(
            f"lse speed-up over the per-report loop (loop time / lse time): {time_ratio('reference', 'lse')}, "
            f"loss relative difference {relative:.1e}"
        )
    if "reclf" in results and "lse" in results:
        print(f"reclf time / lse time: {time_ratio('reclf', 'lse')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
