"""Engine pieces for MONAI workflows: feature inference, classification tasks and metric reports."""

from .classification_task import ClassificationTask
from .feature_inferer import (
    ImageFeatureInferer,
    PairFeatureInferer,
    PrepareOptionalReportBatch,
    PrepareReportBatch,
    ReportEmbeddingInferer,
    ReportFeatureInferer,
)
from .grounding_inferer import PhraseHeatmapInferer
from .metrics_report import write_metrics_report

__all__ = [
    "ClassificationTask",
    "ImageFeatureInferer",
    "PairFeatureInferer",
    "PhraseHeatmapInferer",
    "PrepareOptionalReportBatch",
    "PrepareReportBatch",
    "ReportEmbeddingInferer",
    "ReportFeatureInferer",
    "write_metrics_report",
]
