"""The DDP gathering: 2 CPU processes (gloo) give the single-process loss and gradients."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("distributed_loss_check.py")


@pytest.mark.parametrize("aggregation", ["reclf", "lse", "global_only"])
def test_two_process_loss_and_gradients_equal_single_process(aggregation):
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(SCRIPT), aggregation],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    output = result.stdout + result.stderr
    assert f"DDP_LOSS_CHECK {aggregation} ranks=2" in output, output[-3000:]
    assert result.returncode == 0, output[-3000:]
    assert "FAIL" not in output
