"""Evaluation metrics: retrieval (MONAI has none), zero-shot and linear classification, grounding;
the metrics report an evaluation writes."""

from .class_retrieval import ClassRetrievalMetric
from .classification import ClassificationAUC, key_classification_metric, per_class_auc
from .contrastive_evaluation import (
    RetrievalMetric,
    ZeroShotMetric,
    encode_class_prompts,
    encode_pairs,
    encode_texts,
    score_all_pairs,
)
from .grounding import (
    ContrastToNoiseRatioMetric,
    PointingGameMetric,
    contrast_to_noise_ratio,
    grounding_report,
    grounding_summary,
    pointing_game,
)
from .metric_entry import metric_entry
from .relation_probe import RelationProbeMetric, relation_probe_scores
from .report import write_metrics_report
from .retrieval import class_precision_at_k, retrieval_recall_at_k
from .zero_shot import zero_shot_classification_metrics

__all__ = [
    "ClassificationAUC",
    "ClassRetrievalMetric",
    "ContrastToNoiseRatioMetric",
    "PointingGameMetric",
    "RelationProbeMetric",
    "RetrievalMetric",
    "ZeroShotMetric",
    "class_precision_at_k",
    "contrast_to_noise_ratio",
    "encode_class_prompts",
    "encode_pairs",
    "encode_texts",
    "grounding_report",
    "grounding_summary",
    "key_classification_metric",
    "metric_entry",
    "per_class_auc",
    "pointing_game",
    "relation_probe_scores",
    "retrieval_recall_at_k",
    "score_all_pairs",
    "write_metrics_report",
    "zero_shot_classification_metrics",
]
