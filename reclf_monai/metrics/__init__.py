"""Evaluation metrics for retrieval and zero-shot classification (MONAI has none for retrieval)."""

from .retrieval import class_precision_at_k, retrieval_recall_at_k
from .zero_shot import zero_shot_classification_metrics

__all__ = ["class_precision_at_k", "retrieval_recall_at_k", "zero_shot_classification_metrics"]
