"""Retrieval inference: every image's reports ranked by the model's pair scorer, written as JSON.

The pair score needs the image's patch features and the report's token features (the local
scorer), not just embeddings, so two inference evaluators collect features (images, then
reports) and :func:`write_report_rankings` scores all pairs (or a global shortlist) at the end.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from reclf_monai.handlers.output_collector import OutputCollector
from reclf_monai.metrics.contrastive_evaluation import concat_feature_batches, detached_features, score_all_pairs
from reclf_monai.metrics.shortlist import check_shortlist_k


class FeatureCollector(OutputCollector):
    """Collect one evaluator's feature dicts (`pred`), each row's `item_index` and image file names."""

    def keep(self, prediction: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return detached_features(prediction)

    def features(self) -> dict[str, torch.Tensor]:
        if not self.outputs:
            raise ValueError("no features collected: the evaluator saw no item")
        return concat_feature_batches(self.outputs)


def write_report_rankings(
    output_file: str | os.PathLike,
    network: nn.Module,
    images: FeatureCollector,
    reports: FeatureCollector,
    items: Sequence[Mapping],
    top_k: int = 10,
    shortlist_k: Optional[int] = None,
) -> Path:
    """Write, for every collected image, the `top_k` collected reports with the highest pair score.

    JSON: ``{"top_k": K, "shortlist_k": k, "images": [{"item": i, "image": file, "reports": [{"item":
    j, "score": s, "report": text}, ...]}]}``, reports in descending score (``RECLFModel.pair_logits``:
    global cosine / tau_global + local S / tau_local); `item` is the position in the datalist split.
    `shortlist_k` None (null in the file) scores every pair; k scores exactly only the global
    shortlist (:func:`~reclf_monai.metrics.score_all_pairs`), widened to at least `top_k` so that
    every listed report has an exact score (the file gives the k used).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    shortlist_k = check_shortlist_k(shortlist_k)
    if shortlist_k is not None:
        shortlist_k = max(shortlist_k, top_k)
    scores = score_all_pairs(network, images.features(), reports.features(), shortlist_k=shortlist_k)
    best = scores.topk(min(top_k, scores.shape[1]), dim=1)
    rankings = [
        {
            "item": image_item,
            "image": name,
            "reports": [
                {"item": reports.items[column], "score": score, "report": items[reports.items[column]]["report"]}
                for score, column in zip(row_scores, row_columns)
            ],
        }
        for image_item, name, row_scores, row_columns in zip(images.items, images.names, best.values.tolist(), best.indices.tolist())
    ]
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = output_file.with_name(output_file.name + ".tmp")
    temporary.write_text(json.dumps({"top_k": top_k, "shortlist_k": shortlist_k, "images": rankings}, indent=1))
    os.replace(temporary, output_file)
    logging.getLogger("reclf.inference").info(
        "wrote %s: the top %d of %d reports for each of %d images", output_file, best.indices.shape[1], scores.shape[1], scores.shape[0]
    )
    return output_file
