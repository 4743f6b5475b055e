"""Engine pieces for MONAI workflows: the supervised engines with switches read once, the device
choice, and the inferers and batch preparation of feature, zero-shot and phrase-heatmap inference."""

from .bundle_engines import Evaluator, Trainer, available_device
from .feature_inferer import (
    ImageFeatureInferer,
    PairFeatureInferer,
    PrepareOptionalReportBatch,
    PrepareReportBatch,
    ReportEmbeddingInferer,
    ReportFeatureInferer,
)
from .grounding_inferer import PhraseHeatmapInferer

__all__ = [
    "Evaluator",
    "Trainer",
    "available_device",
    "ImageFeatureInferer",
    "PairFeatureInferer",
    "PhraseHeatmapInferer",
    "PrepareOptionalReportBatch",
    "PrepareReportBatch",
    "ReportEmbeddingInferer",
    "ReportFeatureInferer",
]
