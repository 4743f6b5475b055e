"""Engine pieces for MONAI workflows: feature inference and metric reports."""

from .classification_task import ClassificationTask
from .feature_inferer import ImageFeatureInferer, PrepareReportBatch, ReportEmbeddingInferer
from .metrics_report import write_metrics_report

__all__ = ["ClassificationTask", "ImageFeatureInferer", "PrepareReportBatch", "ReportEmbeddingInferer", "write_metrics_report"]
