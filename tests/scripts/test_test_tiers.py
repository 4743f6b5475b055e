"""`bash scripts/test.sh --quick`: the unit tier collects no test of a module that runs a bundle
CLI, torchrun or the MONAI Label server, nor any test of the research instruments (research/tests),
and still collects the unit tests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from repository import ROOT

# What makes a module's tests end to end: the bundle CLI, several processes, the server.
END_TO_END_CALLS = ("monai_bundle(", "torchrun", "monailabel_server", "run_in_process(")


def quick_tier() -> dict[str, int]:
    """Test module -> number of its tests that the quick tier collects."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test.sh"), "--quick", "--collect-only", "-q"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    return {match[1]: int(match[2]) for match in re.finditer(r"^((?:research/)?tests/(?:\w+/)*test_\w+\.py): (\d+)$", result.stdout, re.M)}


def test_quick_tier_leaves_out_end_to_end_and_research_tests():
    collected = quick_tier()
    for module in sorted([*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("research/tests/**/test_*.py")]):
        if module.name == Path(__file__).name:  # names the calls it looks for
            continue
        name = str(module.relative_to(ROOT))
        if name.startswith("research/") or any(call in module.read_text() for call in END_TO_END_CALLS):
            assert name not in collected, f"{name} runs end to end or tests a research instrument, yet the quick tier runs it"
    unit_modules = (
        "networks/test_local_matching.py", "networks/test_networks.py", "losses/test_losses.py",
        "bundles/test_bundle_metadata.py", "data/test_image_loading.py",
    )  # fmt: skip
    assert all(collected.get(f"tests/{name}", 0) > 0 for name in unit_modules), collected
