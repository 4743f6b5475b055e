"""Ignite handlers that MONAI does not offer: training scalars, non-finite loss, resuming, embedding export."""

from .checkpoints import BestModelRecord, ResumeScheduleHorizon, last_checkpoint
from .embedding_writer import EmbeddingCollector, write_embeddings
from .non_finite_loss import StopOnNonFiniteLoss
from .probability_writer import ProbabilityWriter
from .report_rankings import FeatureCollector, write_report_rankings
from .training_scalars import TrainingScalarsHandler

__all__ = [
    "BestModelRecord",
    "EmbeddingCollector",
    "FeatureCollector",
    "ProbabilityWriter",
    "ResumeScheduleHorizon",
    "StopOnNonFiniteLoss",
    "TrainingScalarsHandler",
    "last_checkpoint",
    "write_embeddings",
    "write_report_rankings",
]
