#!/usr/bin/env python
"""Run the reclf_pretrain bundle's 2-process training (torchrun, gloo on CPU) many times in a row
and count the runs that did not exit cleanly.

A multi-GPU job that trains correctly but dies at shutdown (e.g. SIGABRT, "terminate called
without an active exception") looks failed to every scheduler; such faults show up only in some
runs, so this script repeats a tiny run (64 px, 80 IU-Phantom reports, one epoch) and reports
every non-zero exit with the last lines of its log. Exit status 1 when any run failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reclf_monai.phantom import build_corpus

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "reclf_pretrain"
TINY = {
    "image_size": 64,
    "embed_dim": 32,
    "max_length": 48,
    "batch_size": 4,
    "val_batch_size": 8,
    "num_workers": 0,
    "freeze_text_layers": 4,
    "cache_rate": 0,
    "train#trainer#max_epochs": 1,
}


def training_command(dataset_dir: Path, run_dir: Path, processes: int) -> list[str]:
    configs = f"['{BUNDLE / 'configs' / 'train.json'}','{BUNDLE / 'configs' / 'multi_gpu_train.json'}']"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    command = [torchrun, "--standalone", f"--nproc_per_node={processes}", "-m", "monai.bundle", "run"]
    command += ["--config_file", configs, "--logging_file", str(BUNDLE / "configs" / "logging.conf")]
    settings = {"bundle_root": BUNDLE, "dataset_dir": dataset_dir, "ckpt_dir": run_dir / "models", "output_dir": run_dir / "eval", **TINY}
    for key, value in settings.items():
        command += [f"--{key}", str(value)]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="number of training runs (default 10)")
    parser.add_argument("--processes", type=int, default=2, help="processes per run (default 2)")
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="reclf_stress_") as folder:
        dataset_dir = Path(folder) / "iu_phantom"
        build_corpus(dataset_dir, image_size=TINY["image_size"], seed=0, limit=80, workers=1)
        for run in range(1, args.runs + 1):
            run_dir = Path(folder) / f"run{run}"
            start = time.monotonic()
            result = subprocess.run(
                training_command(dataset_dir, run_dir, args.processes),
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            aborted = "terminate called" in result.stdout or "SIGABRT" in result.stdout
            print(f"run {run}/{args.runs}: exit {result.returncode}{' (abort)' if aborted else ''}, {time.monotonic() - start:.0f} s", flush=True)
            if result.returncode != 0:
                failures += 1
                print("\n".join(result.stdout.splitlines()[-15:]), flush=True)
    print(f"{args.runs - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
