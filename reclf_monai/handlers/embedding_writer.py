"""Collect the embeddings that inference evaluators produce and write them to one ``.npz`` file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from reclf_monai.handlers.output_collector import OutputCollector

EMBEDDING_KINDS = ("image", "report")


class EmbeddingCollector(OutputCollector):
    """Collect one evaluator's `kind` embeddings (`image` or `report`) in data-loader order.

    Each batch must carry `item_index`, the item's position in the datalist split (see
    :func:`reclf_monai.data.items_with`); image batches also give each image's file name.
    """

    def __init__(self, kind: str, index_key: str = "item_index", image_key: str = "image"):
        if kind not in EMBEDDING_KINDS:
            raise ValueError(f"unknown embedding kind {kind!r}; choose one of {EMBEDDING_KINDS}")
        self.kind = kind
        super().__init__(index_key, image_key)

    def keep(self, prediction: torch.Tensor) -> np.ndarray:
        return prediction.detach().float().cpu().numpy()

    def arrays(self) -> dict[str, np.ndarray]:
        """`{kind}_embedding` (N, D) and `{kind}_item` (N,) (+ `image` (N,) file names); empty if no rows."""
        if not self.outputs:
            return {}
        embeddings = np.concatenate(self.outputs)
        arrays = {f"{self.kind}_embedding": embeddings, f"{self.kind}_item": np.asarray(self.items, dtype=np.int64)}
        if self.kind == "image":
            if len(self.names) != len(embeddings):
                raise ValueError(f"{len(embeddings)} image embeddings but {len(self.names)} file names: the batches lack `{self.image_key}`")
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
