"""Runs that more than one test module can compare against: session-scoped, so a test session
computes each at most once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def pretraining_corpus(tmp_path_factory) -> Path:
    """The tiny IU-Phantom of the pretraining tests: 80 IU reports at test_pretrain_bundle's image
    size, 49 training, 6 validation, 24 test items, one zero-shot image per class."""
    from test_pretrain_bundle import IMAGE_SIZE  # imported here: collecting other tests stays light

    from reclf_monai.phantom import build_corpus

    folder = tmp_path_factory.mktemp("iu_phantom_pretraining")
    summary = build_corpus(folder, image_size=IMAGE_SIZE, seed=0, limit=80, workers=1)
    assert summary.zero_shot_per_class >= 1
    return folder


@pytest.fixture(scope="session")
def two_process_pretraining(pretraining_corpus, tmp_path_factory) -> SimpleNamespace:
    """reclf_pretrain's train.json + multi_gpu_train.json under ``torchrun --standalone
    --nproc_per_node 2`` with the tiny settings of test_pretrain_bundle (4 items per rank and step)
    on `pretraining_corpus`. `overrides`: the settings passed on top of those tiny ones."""
    from test_pretrain_bundle import run_bundle

    run_dir, overrides = tmp_path_factory.mktemp("two_process_pretraining"), {"batch_size": 4}
    result = run_bundle(run_dir, pretraining_corpus, "train", "multi_gpu_train", processes=2, **overrides)
    return SimpleNamespace(corpus=pretraining_corpus, run_dir=run_dir, result=result, overrides=overrides)
