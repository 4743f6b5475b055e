"""MONAI's supervised engines and device choice as the bundles use them, with switches read once.

``python -m monai.bundle run --amp false`` hands the config the string ``'false'``, which is true in
Python; MONAI's engines would then run under autocast. These subclasses read ``amp`` through
:func:`~reclf_monai.bundle_switches.switch_on` so the configs pass ``@amp`` as the user gave it.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from monai.engines import SupervisedEvaluator, SupervisedTrainer

from reclf_monai.bundle_switches import switch_on


class Trainer(SupervisedTrainer):
    """``SupervisedTrainer`` whose ``amp`` may be given as a word (true/false, yes/no, on/off, 1/0)."""

    def __init__(self, *args: Any, amp: Any = False, **kwargs: Any):
        super().__init__(*args, amp=switch_on(amp, "amp"), **kwargs)


class Evaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` whose ``amp`` may be given as a word (true/false, yes/no, on/off, 1/0)."""

    def __init__(self, *args: Any, amp: Any = False, **kwargs: Any):
        super().__init__(*args, amp=switch_on(amp, "amp"), **kwargs)


def available_device(distributed: bool = False) -> torch.device:
    """The GPU if there is one, else the CPU; under torchrun (`distributed`) this process's GPU,
    ``cuda:$LOCAL_RANK``."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if not distributed:
        return torch.device("cuda:0")
    if "LOCAL_RANK" not in os.environ:
        raise RuntimeError("multi_gpu_train.json runs under torchrun, which sets LOCAL_RANK; start it with torchrun")
    return torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}")
