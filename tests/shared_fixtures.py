"""Runs and inputs that more than one test module uses (here and in research/tests). The runs and
corpora are session-scoped, so a test session computes each at most once: a test must not change
what they return (copy it first). The dataset download layouts (dataset_layouts.py) are written
anew into each test's own folder. Each test folder's conftest.py makes them its fixtures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def pretraining_corpus(tmp_path_factory) -> Path:
    """The tiny IU-Phantom of the pretraining tests, also the corpus of the classification,
    retrieval and grounding bundle tests: 80 IU reports at pretrain_testing's image size (64),
    49 training, 6 validation, 24 test items, one zero-shot image per class."""
    from pretrain_testing import IMAGE_SIZE  # imported here: collecting other tests stays light

    from reclf_monai.phantom import build_corpus

    folder = tmp_path_factory.mktemp("iu_phantom_pretraining")
    summary = build_corpus(folder, image_size=IMAGE_SIZE, seed=0, limit=80, workers=1)
    assert summary.zero_shot_per_class >= 1
    return folder


@pytest.fixture(scope="session")
def zero_shot_corpus(tmp_path_factory) -> Path:
    """The tiny IU-Phantom of the zero-shot tests: 120 IU reports at 64 px, 35 test items, 2
    zero-shot images per class, 10 laterality images (6 classes)."""
    from reclf_monai.phantom import build_corpus

    folder = tmp_path_factory.mktemp("iu_phantom_zero_shot")
    build_corpus(folder, image_size=64, seed=0, limit=120, workers=1)
    return folder


@pytest.fixture(scope="session")
def tiny_pretraining_checkpoint(tmp_path_factory) -> Path:
    """bundle_testing.write_tiny_pretraining_checkpoint at 64 px, seed 0: the downstream bundles'
    pretrained model (classification, segmentation, retrieval, grounding)."""
    from bundle_testing import write_tiny_pretraining_checkpoint

    return write_tiny_pretraining_checkpoint(tmp_path_factory.mktemp("tiny_pretraining") / "model.pt", image_size=64)


@pytest.fixture(scope="session")
def tiny_pretraining_checkpoint_seed1(tmp_path_factory) -> Path:
    """The same at seed 1 (zero-shot bundle, downstream table): the bundles seed their own
    initialisation with 0, so an untrained baseline differs from it."""
    from bundle_testing import write_tiny_pretraining_checkpoint

    folder = tmp_path_factory.mktemp("tiny_pretraining_seed1")
    return write_tiny_pretraining_checkpoint(folder / "model.pt", image_size=64, seed=1)


@pytest.fixture(scope="session")
def two_process_pretraining(pretraining_corpus, tmp_path_factory) -> SimpleNamespace:
    """reclf_pretrain's train.json + multi_gpu_train.json under ``torchrun --standalone
    --nproc_per_node 2`` with the tiny settings of pretrain_testing (4 items per rank and step)
    on `pretraining_corpus`. `overrides`: the settings passed on top of those tiny ones."""
    from pretrain_testing import run_bundle

    run_dir, overrides = tmp_path_factory.mktemp("two_process_pretraining"), {"batch_size": 4}
    result = run_bundle(run_dir, pretraining_corpus, "train", "multi_gpu_train", processes=2, **overrides)
    return SimpleNamespace(corpus=pretraining_corpus, run_dir=run_dir, result=result, overrides=overrides)


@pytest.fixture
def rsna(tmp_path) -> Path:
    """The RSNA Pneumonia download layout (dataset_layouts.write_rsna_layout): DICOMs of 12 x 16
    pixels and the box table."""
    from dataset_layouts import write_rsna_layout

    return write_rsna_layout(tmp_path / "rsna")


@pytest.fixture
def siim(tmp_path) -> Path:
    """The SIIM-ACR Pneumothorax download as Kaggle ships it (dataset_layouts.write_siim_layout):
    DICOMs of 12 x 16 pixels and the RLE table."""
    from dataset_layouts import write_siim_layout

    return write_siim_layout(tmp_path / "siim")


@pytest.fixture
def mimic(tmp_path) -> Path:
    """The MIMIC-CXR-JPG download layout (dataset_layouts.write_mimic_layout): tables, JPEGs and
    report files of 13 images."""
    from dataset_layouts import write_mimic_layout

    return write_mimic_layout(tmp_path / "mimic-cxr-jpg")
