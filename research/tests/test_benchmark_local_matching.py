"""research/benchmark_local_matching.py at a toy size: it prints one row per variant with the
device it measured, and refuses a CUDA device that torch does not see."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from repository import ROOT

from research import benchmark_local_matching as benchmark_module

pytestmark = pytest.mark.research

TOY = ["--batch_size", "3", "--embed_dim", "8", "--grid", "2", "--max_tokens", "7", "--min_words", "2", "--repeats", "1"]


def benchmark(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "research.benchmark_local_matching", *TOY, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_toy_run_reports_every_variant_and_the_loop_agreement():
    result = benchmark("--device", "cpu", "--variants", "reference", "lse", "--rounds", "2")
    assert result.returncode == 0, result.stderr
    table = [line.split() for line in result.stdout.splitlines() if line.startswith(("reference ", "lse "))]
    rows = {row[0]: row for row in table if row[1] != "speed-up"}
    assert set(rows) == {"reference", "lse"}
    assert "peak RSS +MiB" in result.stdout and "peak live tensors MiB" in result.stdout and "CPUs" in result.stdout
    assert all(len(row) == 7 for row in rows.values())  # both memory columns filled
    assert rows["lse"][3] == "2"  # one timed run in each of the two rounds
    assert "(loop time / lse time): " in result.stdout and "(rounds: " in result.stdout
    relative = float(result.stdout.split("loss relative difference ")[1].split()[0])
    assert relative < 1e-5  # lse is GLoRIA's loop, computed for all pairs at once


def test_rounds_combine_as_median_times_and_largest_memory():
    rounds = [
        {"forward_s": 1.0, "total_s": 3.0, "runs": 2, "peak_memory_growth_mb": 10.0, "peak_live_tensors_mb": 4.0},
        {"forward_s": 2.0, "total_s": 5.0, "runs": 2, "peak_memory_growth_mb": 30.0, "peak_live_tensors_mb": 6.0},
        {"forward_s": 9.0, "total_s": 4.0, "runs": 2, "peak_memory_growth_mb": 20.0, "peak_live_tensors_mb": 5.0},
    ]
    combined = benchmark_module.over_rounds(rounds)
    assert (combined["forward_s"], combined["total_s"], combined["runs"]) == (2.0, 4.0, 6)
    assert (combined["peak_memory_growth_mb"], combined["peak_live_tensors_mb"]) == (30.0, 6.0)
    with pytest.raises(SystemExit, match="--rounds must be at least 1"):
        benchmark_module.main(["--rounds", "0"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_with_a_reason():
    with pytest.raises(SystemExit, match=r"--device cuda:1: this torch .* sees no CUDA device"):
        benchmark_module.resolve_device("cuda:1")
    assert benchmark_module.resolve_device("auto").type == "cpu"


def test_peak_live_tensors_follows_allocations_and_frees_in_order():
    mib = 2**20

    def step():
        first, second = torch.empty(mib // 4), torch.empty(mib // 4)  # 1 MiB each
        del first
        third = torch.empty(mib // 4)
        (second + third).sum()  # a third MiB while both are alive

    assert benchmark_module.peak_live_tensors_mb(step) == pytest.approx(3.0, abs=0.01)
