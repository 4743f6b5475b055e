"""Ignite handlers that MONAI does not offer: training scalars, gradient clipping, word heatmaps, non-finite loss, the
checkpoint folder and resuming, the metrics report, embedding export; segmentation overlays for
MONAI's ``TensorBoardImageHandler``."""

from .checkpoints import BestModelRecord, ResumeScheduleHorizon, claim_checkpoint_folder, last_checkpoint
from .embedding_writer import EmbeddingCollector, write_embeddings
from .gradient_clipping import GradientClipping
from .metrics_report import MetricsReport, MetricsReportHandler, image_metadata
from .non_finite_loss import StopOnNonFiniteLoss
from .probability_writer import ProbabilityWriter
from .report_rankings import FeatureCollector, write_report_rankings
from .segmentation_overlay import mask_overlay, segmentation_overlays
from .training_progress import TrainingProgress
from .training_scalars import TrainingScalarsHandler, loss_value, prediction_loss
from .word_heatmaps import WordHeatmapWriter

__all__ = [
    "BestModelRecord",
    "EmbeddingCollector",
    "FeatureCollector",
    "GradientClipping",
    "MetricsReport",
    "MetricsReportHandler",
    "ProbabilityWriter",
    "ResumeScheduleHorizon",
    "StopOnNonFiniteLoss",
    "TrainingProgress",
    "TrainingScalarsHandler",
    "WordHeatmapWriter",
    "claim_checkpoint_folder",
    "image_metadata",
    "last_checkpoint",
    "loss_value",
    "mask_overlay",
    "prediction_loss",
    "segmentation_overlays",
    "write_embeddings",
    "write_report_rankings",
]
