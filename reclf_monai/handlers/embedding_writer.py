"""Collect the embeddings an evaluator produces and write them to one ``.npz`` file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events


class EmbeddingWriter:
    """Write `image_embedding` / `report_embedding` rows with each image's file name.

    The output ``.npz`` holds ``image_embedding`` (N, D), ``report_embedding`` (N, D) when the
    data had reports, and ``image`` (N,) file names, in data-loader order. It is written to a
    temporary name and renamed, so an interrupted run never leaves a truncated file.
    """

    def __init__(self, output_file: str | os.PathLike, image_key: str = "image", name: str = "reclf.inference"):
        self.output_file = Path(output_file)
        self.image_key = image_key
        self.logger = logging.getLogger(name)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine) -> None:
        self.rows: dict[str, list[np.ndarray]] = {}
        self.names: list[str] = []

    def collect(self, engine: Engine) -> None:
        prediction = engine.state.output["pred"]
        for key, value in prediction.items():
            self.rows.setdefault(key, []).append(value.detach().float().cpu().numpy())
        image = engine.state.batch[self.image_key]
        names = getattr(image, "meta", {}).get("filename_or_obj")
        self.names += list(names) if names is not None else [""] * image.shape[0]

    def write(self, engine: Engine) -> None:
        arrays = {key: np.concatenate(parts) for key, parts in self.rows.items()}
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.output_file.with_name(self.output_file.name + ".tmp.npz")
        np.savez(temporary, image=np.asarray(self.names), **arrays)
        os.replace(temporary, self.output_file)
        shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in arrays.items())
        self.logger.info("wrote %s: %s", self.output_file, shapes)
