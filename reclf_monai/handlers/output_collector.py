"""Collect what an inference evaluator outputs, batch by batch, with each row's datalist item."""

from __future__ import annotations

from typing import Any

import torch
from ignite.engine import Engine, Events


class OutputCollector:
    """Keep each batch's `pred` (in the form `keep` gives it), each row's `item_index` and, for
    image batches, each image's file name, in data-loader order.

    Items come from :func:`reclf_monai.data.items_with`, which numbers them by their position in
    the datalist split, so what is written later can name the item each row belongs to. Subclasses
    say what to keep of a batch's prediction.
    """

    def __init__(self, index_key: str = "item_index", image_key: str = "image"):
        self.index_key = index_key
        self.image_key = image_key
        self.reset()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)

    def reset(self, engine: Engine | None = None) -> None:
        self.outputs: list[Any] = []
        self.items: list[int] = []
        self.names: list[str] = []

    def collect(self, engine: Engine) -> None:
        self.outputs.append(self.keep(engine.state.output["pred"]))
        self.items += torch.as_tensor(engine.state.batch[self.index_key]).view(-1).tolist()
        image = engine.state.batch.get(self.image_key)
        if image is not None:
            self.names += list(image.meta["filename_or_obj"])

    def keep(self, prediction: Any) -> Any:
        raise NotImplementedError
