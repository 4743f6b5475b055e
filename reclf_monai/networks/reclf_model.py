"""RECLF vision-language model: encoders, global and local scorers, temperatures."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from reclf_monai.networks.local_matching import LOCAL_AGGREGATIONS, LocalMatching
from reclf_monai.networks.temperature import Temperature

AGGREGATIONS = ("global_only",) + LOCAL_AGGREGATIONS


class RECLFModel(nn.Module):
    """Image-report contrastive model; `aggregation` picks the local scorer (the ablation key).

    ``model(image)`` returns the L2-normalised global image embedding (B, D): what MONAI's
    ``verify_net_in_out`` and ``ckpt_export --use_trace`` see (the Hugging Face text encoder is not
    TorchScript-able, so the exported TorchScript model is this image path).
    ``model(image, input_ids, attention_mask)`` returns the logits the loss needs, for all
    B x B (image row, report column) pairs, positives on the diagonal:
    ``global_logits`` = cos / tau_global, ``local_logits`` = S / tau_local (absent for
    `global_only`), and the two temperatures (0-d tensors, for logging).

    Args:
        image_encoder: e.g. :class:`~reclf_monai.networks.ImageEncoder`.
        text_encoder: e.g. :class:`~reclf_monai.networks.TextEncoder` (same `embed_dim`).
        aggregation: `global_only`, `lse`, `mean`, `fixed_importance`, `srm`, `irm` or `reclf`.
        global_temperature, local_temperature: initial tau values; `learn_temperatures` learns
            them (clamped to [0.01, 1]). For `lse` the local scale is GLoRIA's fixed temp3.
        gloria_temp1, gloria_temp2, gloria_temp3: GLoRIA's temperatures (4, 5, 10) for `lse`.
        attention_temperature, match_dim, relation_layers, relation_heads, relation_dropout,
        memory_budget_mb, checkpoint_chunks: see :class:`~reclf_monai.networks.LocalMatching`.

    `global_only` freezes the local projections of both encoders (never used there), so DDP
    needs no unused-parameter search. `fixed_importance` switches the text encoder to eager
    attention to read its [CLS] attention.
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        text_encoder: nn.Module,
        aggregation: str = "reclf",
        global_temperature: float = 0.07,
        local_temperature: float = 0.1,
        learn_temperatures: bool = True,
        attention_temperature: float = 0.1,
        match_dim: int = 64,
        relation_layers: int = 1,
        relation_heads: int = 4,
        relation_dropout: float = 0.0,
        gloria_temp1: float = 4.0,
        gloria_temp2: float = 5.0,
        gloria_temp3: float = 10.0,
        memory_budget_mb: float = 512.0,
        checkpoint_chunks: bool = False,
    ):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {AGGREGATIONS}")
        if image_encoder.embed_dim != text_encoder.embed_dim:
            raise ValueError(
                f"image and text encoders must share embed_dim, got {image_encoder.embed_dim} and {text_encoder.embed_dim}"
            )
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.aggregation = aggregation
        self.global_temperature = Temperature(global_temperature, learn_temperatures)
        self.local_matching: Optional[LocalMatching] = None
        if aggregation == "global_only":
            image_encoder.local_projection.requires_grad_(False)
            text_encoder.token_projection.requires_grad_(False)
        else:
            self.local_matching = LocalMatching(
                image_encoder.embed_dim,
                aggregation,
                attention_temperature=attention_temperature,
                match_dim=match_dim,
                relation_layers=relation_layers,
                relation_heads=relation_heads,
                relation_dropout=relation_dropout,
                gloria_temp1=gloria_temp1,
                gloria_temp2=gloria_temp2,
                memory_budget_mb=memory_budget_mb,
                checkpoint_chunks=checkpoint_chunks,
            )
            if aggregation == "lse":
                self.local_temperature = Temperature(1.0 / gloria_temp3, learnable=False)
            else:
                self.local_temperature = Temperature(local_temperature, learn_temperatures)
        if aggregation == "fixed_importance":
            text_encoder.enable_cls_attention()

    def encode_image(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """`patch_map` (B, D, h, w), `patches` (B, h*w, D) and `global` (B, D), not normalised."""
        patch_map, global_embedding = self.image_encoder(image)
        return {"patch_map": patch_map, "patches": patch_map.flatten(2).transpose(1, 2), "global": global_embedding}

    def encode_text(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """`tokens` (B, T, D), `global` (B, D), `word_mask` (B, T) (+ `cls_attention` when used)."""
        return self.text_encoder(input_ids, attention_mask)

    def similarity(self, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unscaled scores of every image against every report (or class prompt):
        `global` cosine (B_img, B_txt) and, unless `global_only`, `local` S (B_img, B_txt).

        The same scorer serves training, zero-shot classification (prompts as reports) and retrieval.
        """
        scores = {
            "global": F.normalize(image_features["global"], dim=-1) @ F.normalize(text_features["global"], dim=-1).T
        }
        if self.local_matching is not None:
            scores["local"] = self.local_matching(
                image_features["patches"],
                text_features["tokens"],
                text_features["word_mask"],
                text_features.get("cls_attention"),
            )
        return scores

    def forward(
        self,
        image: torch.Tensor,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
    ):
        if input_ids is None:
            return F.normalize(self.image_encoder(image)[1], dim=-1)
        scores = self.similarity(self.encode_image(image), self.encode_text(input_ids, attention_mask))
        global_tau = self.global_temperature()
        output = {"global_logits": scores["global"] / global_tau, "global_temperature": global_tau.detach()}
        if self.local_matching is not None:
            local_tau = self.local_temperature()
            output["local_logits"] = scores["local"] / local_tau
            output["local_temperature"] = local_tau.detach()
        return output
