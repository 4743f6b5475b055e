"""Gradient clipping for MONAI's SupervisedTrainer, which has no option for it (GLoRIA clips the
gradient norm at 0.25 through PyTorch Lightning's ``gradient_clip_val``).

The trainer fires ``IterationEvents.BACKWARD_COMPLETED`` between the backward pass and the
optimizer step; this handler clips there. Under AMP the gradients are still scaled at that point,
so it unscales them first (``GradScaler.unscale_``; the trainer's ``scaler.step`` then knows they
are unscaled and does not unscale them again).
"""

from __future__ import annotations

from typing import Optional

import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents

from reclf_monai.bundle_switches import optional_setting


class GradientClipping:
    """Clip the total gradient norm of the trainer's network to `max_norm` at every iteration;
    `max_norm` None (or the word none) clips nothing."""

    def __init__(self, max_norm: Optional[float | str] = None):
        max_norm = optional_setting(max_norm)
        if max_norm is not None and not float(max_norm) > 0:
            raise ValueError(f"gradient_clip_norm must be positive (or none), got {max_norm!r}")
        self.max_norm = None if max_norm is None else float(max_norm)

    def attach(self, engine: Engine) -> None:
        if self.max_norm is not None:
            engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        scaler = getattr(engine, "scaler", None)
        if getattr(engine, "amp", False) and scaler is not None:
            scaler.unscale_(engine.optimizer)
        torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.max_norm)
