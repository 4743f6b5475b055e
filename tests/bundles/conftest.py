"""The corpus and checkpoint most bundle tests run on: the 80-report IU-Phantom corpus and the tiny
pretraining checkpoint of tests/shared_fixtures.py. A test module that needs another corpus or
checkpoint (segmentation, zero-shot) defines its own fixture of the same name, which pytest uses
instead in that module."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def corpus(pretraining_corpus) -> Path:
    """80 IU reports at 64 px: 49 training, 6 validation, 24 test items, one zero-shot item per class."""
    return pretraining_corpus


@pytest.fixture(scope="module")
def checkpoint(tiny_pretraining_checkpoint) -> Path:
    return tiny_pretraining_checkpoint
