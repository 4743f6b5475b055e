"""The reclf_pretrain bundle's tiny settings (64-pixel images, 32-d embeddings, one epoch) and its
runner: its own tests, the multi-node test, the shared pretraining fixtures and the research tests
train with them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bundle_testing import BUNDLES, bundle_config_files, run_workflow

BUNDLE = BUNDLES / "reclf_pretrain"
CONFIGS = BUNDLE / "configs"

IMAGE_SIZE = 64
EMBED_DIM = 32
BATCH_SIZE = 8
SMALL = {
    "image_size": IMAGE_SIZE,
    "embed_dim": EMBED_DIM,
    "max_length": 48,
    "batch_size": BATCH_SIZE,
    "val_batch_size": 8,
    "num_workers": 0,
    "freeze_text_layers": 4,
    "cache_rate": 0,
    "train#trainer#max_epochs": 1,
}


def config_files(*names: str) -> str:
    """The `--config_file` value for this bundle's configs `names` (merged in order)."""
    return bundle_config_files(CONFIGS, *names)


def run_bundle(run_dir: Path, dataset_dir: Path, *configs: str, processes: int = 1, **overrides) -> subprocess.CompletedProcess:
    """``monai.bundle run`` with the tiny settings; checkpoints in run_dir/models, outputs in run_dir/eval."""
    settings = {"dataset_dir": dataset_dir, "ckpt_dir": run_dir / "models", "output_dir": run_dir / "eval", **SMALL, **overrides}
    return run_workflow(BUNDLE, run_dir, *configs, processes=processes, **settings)
