"""Zero-shot classification: class scores from prompt scores, and metrics from per-class scores
(one positive class per image)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import compute_roc_auc
from sklearn.metrics import f1_score


def mean_over_prompts(pair_logits: torch.Tensor, owners: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, C) class scores from (N, P) pair logits against P prompts: each class's mean over its
    prompts (`owners` (P,) holds each prompt's class index)."""
    one_hot = torch.nn.functional.one_hot(owners.to(pair_logits.device), num_classes).to(pair_logits.dtype)
    return pair_logits @ one_hot / one_hot.sum(0)


def zero_shot_classification_metrics(
    class_scores: torch.Tensor, targets: Sequence[int] | torch.Tensor
) -> dict[str, float]:
    """Macro AUC (one-vs-rest, MONAI's `compute_roc_auc`), accuracy and macro F1 of argmax.

    `class_scores` is (N, C): e.g. each image's similarity to each class's prompts, or class
    probabilities. `acc`: share of images whose highest-scoring class is their class; `f1`:
    unweighted mean over the C classes of each class's F1 of that prediction (scikit-learn, 0 for
    a class never predicted); `auc`: unweighted mean over the C classes of the ROC AUC of the
    class's score column against "is this class" (NaN when a class has no image).
    """
    scores = class_scores.detach().float().cpu()
    targets = torch.as_tensor(targets).long().cpu()
    if scores.ndim != 2 or scores.shape[0] != targets.shape[0]:
        raise ValueError(f"class_scores {tuple(scores.shape)} does not match {targets.shape[0]} targets")
    if int(targets.min()) < 0 or int(targets.max()) >= scores.shape[1]:
        raise ValueError(f"targets must lie in [0, {scores.shape[1]}), got range [{int(targets.min())}, {int(targets.max())}]")
    one_hot = torch.nn.functional.one_hot(targets, scores.shape[1]).float()
    predicted = scores.argmax(dim=1)
    return {
        "auc": float(compute_roc_auc(scores, one_hot, average="macro")),
        "acc": (predicted == targets).float().mean().item(),
        "f1": float(f1_score(targets.numpy(), predicted.numpy(), average="macro", labels=list(range(scores.shape[1])), zero_division=0)),
    }
