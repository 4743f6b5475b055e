"""Phrase grounding with the pretrained local scorer: where in the image a phrase's words look.

The local score of image i and text j is S = sum_t alpha_t s~_t, where word t attends over the
image's patches with a_tp (softmax over patches) and alpha_t weighs the words
(:mod:`reclf_monai.networks.local_matching`). The phrase's heatmap is the same weighting of the
words' attention maps,

    H_p = sum_t alpha_t a_tp          (sums to 1 over the patches p),

on the patch grid (h, w) of the image encoder, upsampled to the image for display and evaluation.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def paired_match_details(
    model: nn.Module, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The local scorer's per-token details (``LocalMatching.match_details``) of image i and text i
    (paired, not all pairs) from the model's features (``encode_image`` / ``encode_text``): the
    local score `similarity` (B,) and per token, 0 at the padding, `token_weights` alpha (B, T),
    `token_scores` (B, T), `attention` (B, T, P) and, with SRM, `token_corrections` (B, T)."""
    model = getattr(model, "module", model)
    matching = model.local_matching
    if matching is None:
        raise ValueError(f"aggregation {model.aggregation!r} has no local scorer, so no word-to-region attention to ground a phrase with")
    count = image_features["patches"].shape[0]
    if text_features["tokens"].shape[0] != count:
        raise ValueError(f"{count} images but {text_features['tokens'].shape[0]} phrases: grounding pairs image i with phrase i")
    importance = text_features.get("cls_attention")
    pairs = [
        matching.match_details(
            image_features["patches"][index : index + 1],
            text_features["tokens"][index : index + 1],
            text_features["word_mask"][index : index + 1],
            None if importance is None else importance[index : index + 1],
        )
        for index in range(count)
    ]
    return {key: torch.stack([details[key][0, 0] for details in pairs]) for key in pairs[0]}


def word_attention_maps(
    model: nn.Module, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Word weights alpha (B, T) and word-to-region attention maps a (B, T, h, w) of image i and
    text i (see :func:`paired_match_details`); row-major patches, so (0, 0) is the top-left patch."""
    details = paired_match_details(model, image_features, text_features)
    height, width = image_features["patch_map"].shape[-2:]
    attention = details["attention"]
    return details["token_weights"], attention.view(*attention.shape[:2], height, width)


def phrase_heatmaps(model: nn.Module, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, h, w) heatmaps H = sum_t alpha_t a_t of image i and phrase i (see :func:`word_attention_maps`)."""
    weights, maps = word_attention_maps(model, image_features, text_features)
    return (weights[..., None, None] * maps).sum(1)


def upsample_heatmaps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) patch-grid maps -> (B, C, *size), bilinear with patch centres on pixel centres."""
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False).as_subclass(torch.Tensor)


@torch.no_grad()
def phrase_heatmap(
    model: nn.Module, image: torch.Tensor, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """(B, 1, H, W) heatmaps at the image's size (bilinear, patch centres on pixel centres) for
    images (B, 1, H, W) and their phrases' token ids (B, T)."""
    model = getattr(model, "module", model)
    maps = phrase_heatmaps(model, model.encode_image(image), model.encode_text(input_ids, attention_mask))
    return upsample_heatmaps(maps[:, None], image.shape[-2:])
