"""Ignite handlers that MONAI does not offer: training scalars, non-finite loss, resuming, embedding export."""

from .checkpoints import ResumeScheduleHorizon, last_checkpoint
from .embedding_writer import EmbeddingWriter
from .non_finite_loss import StopOnNonFiniteLoss
from .training_scalars import TrainingScalarsHandler

__all__ = ["EmbeddingWriter", "ResumeScheduleHorizon", "StopOnNonFiniteLoss", "TrainingScalarsHandler", "last_checkpoint"]
