"""Engine pieces for MONAI workflows: the inferers and batch preparation of feature, zero-shot and
phrase-heatmap inference."""

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
    "ImageFeatureInferer",
    "PairFeatureInferer",
    "PhraseHeatmapInferer",
    "PrepareOptionalReportBatch",
    "PrepareReportBatch",
    "ReportEmbeddingInferer",
    "ReportFeatureInferer",
]
