"""Classification targets from datalist items: a multi-hot list (multi-label) or a class index
(multi-class), checked against the classes the task has.

Prepared datalists store a target in one key (``target`` by default) with the class order in the
top-level ``class_names``. A multi-label head needs a float vector of ``num_classes`` entries
(binary tasks such as RSNA Pneumonia store a 0/1 index: with one class it is that class's flag);
a multi-class head needs an integer index. Anything else stops with an error naming the image,
never a silently reshaped or truncated target.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch
from monai.transforms import MapTransform

from .errors import DataError

MULTI_LABEL = "multi_label"
MULTI_CLASS = "multi_class"
CLASSIFICATION_TASKS = (MULTI_LABEL, MULTI_CLASS)


def check_task(task: str) -> str:
    """`task` if it names a classification task; a ValueError listing the tasks otherwise."""
    if task not in CLASSIFICATION_TASKS:
        raise ValueError(f"--task must be one of {', '.join(CLASSIFICATION_TASKS)}, got {task!r}")
    return task


def datalist_class_names(path: str | os.PathLike) -> list[str]:
    """The datalist's top-level ``class_names`` (the order of every item's target)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "datalist file not found")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(path, f"not valid JSON ({error})") from error
    names = content.get("class_names") if isinstance(content, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise DataError(
            path,
            "no top-level 'class_names' list (the class of each target entry, in order); prepared datalists have "
            "one, otherwise pass --class_names \"['first', 'second', ...]\"",
        )
    return names


def classification_target(value, task: str, num_classes: int, source: object = None) -> torch.Tensor:
    """The target as the loss wants it: float (num_classes,) for multi-label, an int64 index for
    multi-class. `source` (the image) names the item in errors."""
    check_task(task)
    flat = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if flat.dtype == bool or flat.dtype.kind not in "iuf":
        raise DataError(source, f"target {value!r} is not a class index or a list of numbers")
    if task == MULTI_CLASS:
        if flat.ndim != 0 or float(flat) != int(flat) or not 0 <= int(flat) < num_classes:
            raise DataError(source, f"multi-class target must be a class index in [0, {num_classes}), got {value!r}")
        return torch.tensor(int(flat), dtype=torch.int64)
    if flat.ndim == 0 and num_classes == 1:
        flat = flat.reshape(1)  # a binary task's 0/1 index is its one class's flag
    if flat.shape != (num_classes,) or not np.isin(flat, (0, 1)).all():
        raise DataError(source, f"multi-label target must be {num_classes} values of 0 or 1, got {value!r}")
    return torch.as_tensor(flat, dtype=torch.float32)


class ClassificationTargetd(MapTransform):
    """Put an item's target (under `key`) into `output_key` as :func:`classification_target` makes it."""

    def __init__(self, key: str, task: str, num_classes: int, output_key: str = "label", image_key: str = "image"):
        super().__init__([key])
        self.key, self.task, self.num_classes = key, check_task(task), int(num_classes)
        self.output_key, self.image_key = output_key, image_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        item = dict(data)
        source = _image_name(item.get(self.image_key))
        if self.key not in item:
            raise DataError(source, f"item has no {self.key!r} (the label key; set --label_key)")
        item[self.output_key] = classification_target(item[self.key], self.task, self.num_classes, source)
        return item


def _image_name(image) -> object:
    meta = getattr(image, "meta", None)
    return meta.get("filename_or_obj") if meta else image
