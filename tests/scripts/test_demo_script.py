"""scripts/demo.sh keeps an earlier run's results: without --overwrite it stops before computing
anything, names the folders and leaves them as they were."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from repository import ROOT

SCRIPT = ROOT / "scripts" / "demo.sh"


@pytest.mark.parametrize("earlier", ["reclf_pretrain/models/model.pt", "downstream/downstream_table.md"])
def test_an_earlier_demo_run_is_kept(tmp_path, earlier):
    output = tmp_path / "demo_output"
    kept = output / earlier
    kept.parent.mkdir(parents=True)
    kept.write_text("an earlier run")
    result = subprocess.run(
        ["bash", str(SCRIPT), "--image_size", "96"], env={**os.environ, "DEMO_OUTPUT": str(output)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:]
    folder = output / Path(earlier).parts[0]
    assert f"[demo] error: {folder} hold(s) an earlier demo run's results" in result.stdout
    assert "bash scripts/demo.sh --overwrite" in result.stdout
    assert kept.read_text() == "an earlier run"
    assert not (output / "iu_phantom").exists()  # stopped before building anything
