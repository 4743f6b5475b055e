"""Ignite handlers that MONAI does not offer: training scalars, non-finite loss, resuming."""

from .checkpoints import last_checkpoint
from .non_finite_loss import StopOnNonFiniteLoss
from .training_scalars import TrainingScalarsHandler

__all__ = ["StopOnNonFiniteLoss", "TrainingScalarsHandler", "last_checkpoint"]
