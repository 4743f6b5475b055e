"""The DDP gathering: 2 CPU processes (gloo) give the single-process loss and gradients."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.end_to_end

SCRIPT = Path(__file__).with_name("distributed_loss_check.py")


def run_check(*arguments: str) -> tuple[int, str]:
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("aggregation", ["reclf", "lse", "global_only"])
def test_two_process_loss_and_gradients_equal_single_process(aggregation):
    returncode, output = run_check(aggregation)
    assert f"DDP_LOSS_CHECK {aggregation} ranks=2" in output, output[-3000:]
    assert returncode == 0, output[-3000:]
    assert "FAIL" not in output


def test_the_check_catches_features_gathered_without_gradients():
    """The relative tolerances still see a real bug: the loss stays equal, the gradients do not."""
    returncode, output = run_check("reclf", "detached_gather")
    assert "DDP_LOSS_CHECK reclf ranks=2" in output, output[-3000:]
    assert "FAIL gradient of image_encoder" in output, output[-3000:]
    assert "FAIL loss" not in output
    assert returncode != 0
