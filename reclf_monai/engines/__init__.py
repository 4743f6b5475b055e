"""Engine pieces for MONAI workflows: feature inference and metric reports."""

from .feature_inferer import ImageFeatureInferer, PrepareReportBatch, ReportEmbeddingInferer
from .metrics_report import write_metrics_report

__all__ = ["ImageFeatureInferer", "PrepareReportBatch", "ReportEmbeddingInferer", "write_metrics_report"]
