"""Stop training at the first non-finite loss, naming where it happened.

Ignite's ``TerminateOnNan`` ends the run quietly with a successful exit; a diverged
contrastive run should fail loudly. Checkpoints are written at epoch ends only, so the last
checkpoint on disk stays the last good one.
"""

from __future__ import annotations

import logging

import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss:
    """Raise :class:`NonFiniteLossError` naming the iteration and epoch of a NaN/Inf loss."""

    def __init__(self, loss_key: str = CommonKeys.LOSS, name: str = "reclf.train"):
        self.loss_key = loss_key
        self.logger = logging.getLogger(name)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        loss = output[0][self.loss_key] if isinstance(output, list) else output[self.loss_key]
        if not torch.isfinite(torch.as_tensor(loss)).all():
            message = (
                f"non-finite loss ({float(loss)}) at iteration {engine.state.iteration} "
                f"(epoch {engine.state.epoch}); training stopped, the last checkpoint on disk is the last good one"
            )
            self.logger.error(message)
            raise NonFiniteLossError(message)
