"""Collect the embeddings that inference evaluators produce and write them to one ``.npz`` file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from ignite.engine import Engine, Events

EMBEDDING_KINDS = ("image", "report")


class EmbeddingCollector:
    """Collect one evaluator's `kind` embeddings (`image` or `report`) in data-loader order.

    Each batch must carry `item_index`, the item's position in the datalist split (see
    :func:`reclf_monai.data.items_with`); image batches also give each image's file name.
    """

    def __init__(self, kind: str, index_key: str = "item_index", image_key: str = "image"):
        if kind not in EMBEDDING_KINDS:
            raise ValueError(f"unknown embedding kind {kind!r}; choose one of {EMBEDDING_KINDS}")
        self.kind = kind
        self.index_key = index_key
        self.image_key = image_key
        self.reset()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)

    def reset(self, engine: Engine | None = None) -> None:
        self.rows: list[np.ndarray] = []
        self.indices: list[np.ndarray] = []
        self.names: list[str] = []

    def collect(self, engine: Engine) -> None:
        self.rows.append(engine.state.output["pred"].detach().float().cpu().numpy())
        self.indices.append(np.asarray(engine.state.batch[self.index_key]).reshape(-1))
        if self.kind == "image":
            image = engine.state.batch[self.image_key]
            self.names += list(image.meta["filename_or_obj"])

    def arrays(self) -> dict[str, np.ndarray]:
        """`{kind}_embedding` (N, D) and `{kind}_item` (N,) (+ `image` (N,) file names); empty if no rows."""
        if not self.rows:
            return {}
        arrays = {f"{self.kind}_embedding": np.concatenate(self.rows), f"{self.kind}_item": np.concatenate(self.indices)}
        if self.kind == "image":
            arrays["image"] = np.asarray(self.names)
        return arrays


def write_embeddings(output_file: str | os.PathLike, *collectors: EmbeddingCollector, logger_name: str = "reclf.inference") -> Path:
    """Write the collectors' arrays to one ``.npz`` (temporary name, then renamed: never a truncated file)."""
    arrays = {name: value for collector in collectors for name, value in collector.arrays().items()}
    if not arrays:
        raise ValueError(f"{output_file}: nothing to write, no image or report was embedded")
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = output_file.with_name(output_file.name + ".tmp.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, output_file)
    shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in arrays.items() if name.endswith("_embedding"))
    logging.getLogger(logger_name).info("wrote %s: %s", output_file, shapes)
    return output_file
