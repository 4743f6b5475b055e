"""Per-image class probabilities from an inference run, as one CSV file.

MONAI's ``ClassificationSaver`` (through ``CSVSaver``) writes no header, keeps one row per file
name (an image listed twice becomes one row) and does not quote names that hold the delimiter;
this handler writes a header (``image`` and the class names) and one quoted row per evaluated
item, in the order evaluated (the datalist's order when the loader does not shuffle).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from ignite.engine import Engine, Events

logger = logging.getLogger("reclf.inference")


class ProbabilityWriter:
    """Collect each decollated item's probabilities (`pred_key`) and image file name; write the CSV
    at the end of the run.

    Args:
        output_file: the CSV to write (folders are created).
        class_names: the column of each probability, in the network's output order.
        image_key: the item's image (a MetaTensor whose ``filename_or_obj`` names the file).
        pred_key: the item's probabilities (C,), e.g. after MONAI's ``Activationsd``.
        class_columns: for one class per image (multi-class, zero-shot): also write `true_class`
            (the name of the item's class index under `label_key`; empty for items without one,
            as in inference) and `predicted_class` (the most probable class) after the image.
        label_key: the item's class index, read when `class_columns`.
    """

    def __init__(
        self,
        output_file: str | os.PathLike,
        class_names: Sequence[str],
        image_key: str = "image",
        pred_key: str = "pred",
        class_columns: bool = False,
        label_key: str = "label",
    ):
        self.output_file = Path(output_file)
        self.class_names = list(class_names)
        self.image_key, self.pred_key = image_key, pred_key
        self.class_columns, self.label_key = class_columns, label_key
        self.rows: list[list[str]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine) -> None:
        self.rows = []

    def collect(self, engine: Engine) -> None:
        items = engine.state.output
        if isinstance(items, dict):
            raise ValueError("ProbabilityWriter needs decollated items (the evaluator's decollate=True)")
        for item in items:
            probabilities = torch.as_tensor(item[self.pred_key]).detach().float().cpu().view(-1)
            if probabilities.numel() != len(self.class_names):
                raise ValueError(f"{probabilities.numel()} probabilities for {len(self.class_names)} classes ({self.class_names})")
            image = item[self.image_key]
            name = getattr(image, "meta", {}).get("filename_or_obj", "")
            classes = [self._true_class(item.get(self.label_key)), self.class_names[int(probabilities.argmax())]] if self.class_columns else []
            self.rows.append([str(name), *classes, *(repr(value) for value in probabilities.tolist())])

    def _true_class(self, label) -> str:
        return "" if label is None else self.class_names[int(torch.as_tensor(label).view(-1)[0])]

    def write(self, engine: Engine) -> None:
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        with self.output_file.open("w", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
            writer.writerow(["image", *(["true_class", "predicted_class"] if self.class_columns else []), *self.class_names])
            writer.writerows(self.rows)
        logger.info("probabilities of %d images written to %s", len(self.rows), self.output_file)
