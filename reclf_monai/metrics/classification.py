"""Classification metrics of the linear-evaluation protocol: macro AUC (multi-label; CheXpert,
RSNA) and accuracy (multi-class; COVIDx), as ignite metrics for MONAI's evaluators.

Each class's AUC is MONAI's :func:`~monai.metrics.compute_roc_auc` (one-vs-rest for multi-class).
MONAI's macro average is NaN as soon as one class has no positive (or no negative) item in the
evaluated split, as happens in small validation sets; here the macro average is taken over the
classes that have both, ``auc_classes`` says how many, and a warning names the others. Accuracy
is ignite's :class:`~ignite.metrics.Accuracy`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from ignite.metrics import Accuracy, Metric
from ignite.metrics.metric import reinit__is_reduced
from monai.metrics import compute_roc_auc

from .metric_entry import metric_entry

if TYPE_CHECKING:
    from reclf_monai.networks.classification_task import ClassificationTask

logger = logging.getLogger("reclf.evaluate")


def per_class_auc(probabilities: torch.Tensor, targets: torch.Tensor, class_names: Sequence[str]) -> dict[str, float]:
    """``auc`` (macro over the classes with positives and negatives), ``auc_classes`` (how many)
    and ``auc/NAME`` for each of those classes, from (N, C) probabilities and (N, C) 0/1 targets."""
    if probabilities.shape != targets.shape or probabilities.shape[1] != len(class_names):
        raise ValueError(f"probabilities {tuple(probabilities.shape)} and targets {tuple(targets.shape)} do not fit {len(class_names)} classes")
    result: dict[str, float] = {}
    undefined = []
    for index, name in enumerate(class_names):
        column = targets[:, index]
        if column.min() == column.max():
            undefined.append(name)
            continue
        result[f"auc/{name}"] = float(compute_roc_auc(probabilities[:, index], column))
    if undefined:
        logger.warning("AUC undefined (no positive or no negative among %d items), left out of the macro AUC: %s", targets.shape[0], ", ".join(undefined))
    scores = list(result.values())
    result["auc"] = sum(scores) / len(scores) if scores else math.nan
    result["auc_classes"] = float(len(scores))
    return result


class ClassificationAUC(Metric):
    """Macro and per-class AUC over every evaluated item (see :func:`per_class_auc`).

    `output_transform` maps the evaluator output to (logits (B, C), targets): multi-hot (B, C) for
    a multi-label task, class indices (B,) for a multi-class one. ``compute`` returns a dict that
    ignite adds key by key to ``engine.state.metrics``; the result is cached until the next reset,
    so a ``MetricsLambda`` on it (the key metric) costs nothing more. `prefix` starts every key
    (``val_`` during training: ``val_auc``, ``val_auc/NAME``).
    """

    def __init__(
        self,
        task: "ClassificationTask",
        prefix: str = "",
        output_transform: Callable = lambda output: (output["pred"], output["label"]),
        device: Any = "cpu",
    ):
        self.task = task
        self.prefix = prefix
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._probabilities: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._result: dict[str, float] | None = None

    @reinit__is_reduced
    def update(self, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        logits, targets = output
        self._probabilities.append(self.task.probabilities(logits.detach().float()).cpu())
        targets = targets.detach().cpu()
        if not self.task.multi_label:
            targets = torch.nn.functional.one_hot(targets.long().view(-1), self.task.num_classes)
        self._targets.append(targets.float())
        self._result = None

    def compute(self) -> dict[str, float]:
        if self._result is None:
            if not self._probabilities:
                raise RuntimeError("ClassificationAUC needs at least one batch before compute()")
            result = per_class_auc(torch.cat(self._probabilities), torch.cat(self._targets), self.task.class_names)
            self._result = {self.prefix + name: value for name, value in result.items()}
        return self._result


def key_classification_metric(auc: ClassificationAUC) -> dict[str, Metric]:
    """The metric that picks the best model: `auc`'s macro AUC (multi-label) or accuracy
    (multi-class), named with `auc`'s prefix."""
    if auc.task.multi_label:
        name = f"{auc.prefix}auc"
        return {name: metric_entry(auc, name)}
    return {f"{auc.prefix}acc": Accuracy(output_transform=lambda output: (output["pred"], output["label"]))}
