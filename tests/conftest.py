"""Runs that more than one test module can compare against: session-scoped, so a test session
computes each at most once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def two_process_pretraining(tmp_path_factory) -> SimpleNamespace:
    """reclf_pretrain's train.json + multi_gpu_train.json under ``torchrun --standalone
    --nproc_per_node 2`` with the tiny settings of test_pretrain_bundle (4 items per rank and step),
    on a tiny IU-Phantom of its own. `overrides`: the settings passed on top of those tiny ones."""
    from test_pretrain_bundle import IMAGE_SIZE, run_bundle  # imported here: collecting other tests stays light

    from reclf_monai.phantom import build_corpus

    corpus = tmp_path_factory.mktemp("iu_phantom_two_process")
    build_corpus(corpus, image_size=IMAGE_SIZE, seed=0, limit=80, workers=1)
    run_dir, overrides = tmp_path_factory.mktemp("two_process_pretraining"), {"batch_size": 4}
    result = run_bundle(run_dir, corpus, "train", "multi_gpu_train", processes=2, **overrides)
    return SimpleNamespace(corpus=corpus, run_dir=run_dir, result=result, overrides=overrides)
