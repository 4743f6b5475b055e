"""Engine pieces for MONAI workflows: feature inference and metric reports."""

from .feature_inferer import EmbeddingInferer, ImageFeatureInferer
from .metrics_report import write_metrics_report

__all__ = ["EmbeddingInferer", "ImageFeatureInferer", "write_metrics_report"]
