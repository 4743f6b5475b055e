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


def max_over_prompts(pair_scores: torch.Tensor, owners: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, C) class scores from (N, P) pair scores: each class's best prompt (GLoRIA's zero-shot)."""
    owners = owners.to(pair_scores.device)
    return torch.stack([pair_scores[:, owners == index].amax(dim=1) for index in range(num_classes)], dim=1)


def class_scores_from_prompts(pair_scores: torch.Tensor, owners: torch.Tensor, num_classes: int, scoring: str = "model") -> torch.Tensor:
    """(N, C) class scores of N images from their scores against every prompt, pooled over each
    class's prompts as `scoring` does (``RECLFModel.pair_logits``): the mean (``model``) or the
    best prompt (``gloria``)."""
    pool = max_over_prompts if scoring == "gloria" else mean_over_prompts
    return pool(pair_scores, owners, num_classes)


def standardise_classes(class_scores: torch.Tensor) -> torch.Tensor:
    """Each class's column standardised over the images (mean 0, standard deviation 1), as GLoRIA's
    zero-shot ``utils.normalize`` does, so that the argmax compares classes on one scale; the
    ranking within a class, hence its AUC, stays the same."""
    if class_scores.shape[0] < 2:
        return class_scores
    return (class_scores - class_scores.mean(0)) / class_scores.std(0).clamp_min(torch.finfo(class_scores.dtype).tiny)


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
