"""What a classifier's outputs mean: the task (multi-label or multi-class) and the class names.

The classification bundle saves this record in its checkpoints (entry ``classification``) beside
the network's weights and settings, so evaluation and inference apply the activation the head was
trained with (sigmoid per class, or softmax) and name the classes from the file alone, and refuse
test data whose classes differ from the ones the head learnt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.transforms import Activationsd
from torch import nn

from reclf_monai.data.classification_targets import MULTI_LABEL, check_task
from reclf_monai.data.errors import DataError
from reclf_monai.networks.checkpoints import read_checkpoint

TASK_KEY = "classification"


class ClassificationTask:
    """The task and class names of a classifier; ``CheckpointSaver`` saves its ``state_dict``,
    :meth:`from_checkpoint` reads it back (`source` names the file in errors)."""

    def __init__(self, task: str, class_names: Sequence[str], source: str | os.PathLike | None = None):
        self.task = check_task(task)
        self.class_names = [str(name) for name in class_names]
        if not self.class_names:
            raise ValueError("a classification task needs at least one class")
        self.source = source

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def multi_label(self) -> bool:
        return self.task == MULTI_LABEL

    def loss(self) -> nn.Module:
        """BCE on the logits (multi-label) or cross-entropy (multi-class)."""
        return nn.BCEWithLogitsLoss() if self.multi_label else nn.CrossEntropyLoss()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, C) logits -> (B, C) probabilities: sigmoid per class or softmax over the classes."""
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)

    def activation(self, key: str = "pred") -> Activationsd:
        """Logits -> probabilities of one (decollated) item: sigmoid per class or softmax."""
        return Activationsd(keys=key, sigmoid=self.multi_label, softmax=not self.multi_label)

    def state_dict(self) -> dict[str, Any]:
        return {"task": self.task, "class_names": list(self.class_names)}

    def check_class_names(self, class_names: Sequence[str], source: str | os.PathLike) -> None:
        """DataError naming `source` (e.g. a test datalist) unless its classes are this task's, in order."""
        if list(class_names) != self.class_names:
            where = f" in {self.source}" if self.source else ""
            raise DataError(
                source, f"class_names {list(class_names)!r} differ from those the classifier{where} was trained for: {self.class_names!r}"
            )

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "ClassificationTask":
        """The task a classification checkpoint was trained for (DataError naming the file otherwise)."""
        saved = read_checkpoint(path).get(TASK_KEY)
        if not isinstance(saved, Mapping) or "task" not in saved or "class_names" not in saved:
            raise DataError(
                path,
                f"not a classification checkpoint: no {TASK_KEY!r} entry with the task and class names "
                "(evaluation and inference read the model.pt that reclf_classification's training writes)",
            )
        return cls(saved["task"], saved["class_names"], source=path)
