"""Evaluation metrics for retrieval and zero-shot classification (MONAI has none for retrieval)."""

from .contrastive_evaluation import RetrievalMetric, ZeroShotMetric, score_all_pairs
from .retrieval import class_precision_at_k, retrieval_recall_at_k
from .zero_shot import zero_shot_classification_metrics

__all__ = [
    "RetrievalMetric",
    "ZeroShotMetric",
    "class_precision_at_k",
    "retrieval_recall_at_k",
    "score_all_pairs",
    "zero_shot_classification_metrics",
]
