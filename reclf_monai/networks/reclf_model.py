"""RECLF vision-language model: encoders, global and local scorers, temperatures."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from reclf_monai.bundle_switches import switch_on
from reclf_monai.networks.checkpoints import RETIRED_SETTINGS, load_pretrained_weights, pretraining_settings, with_added_settings
from reclf_monai.networks.feature_gathering import gather_features, is_distributed
from reclf_monai.networks.image_encoder import ImageEncoder
from reclf_monai.networks.local_matching import LOCAL_AGGREGATIONS, LocalMatching
from reclf_monai.networks.temperature import Temperature
from reclf_monai.networks.text_encoder import TextEncoder

AGGREGATIONS = ("global_only",) + LOCAL_AGGREGATIONS
SCORINGS = ("model", "gloria")
GLORIA_ZERO_SHOT_TEMP2 = 5.0  # GLoRIA's get_local_similarities: exp(5 x cosine), max over words, log


def check_scoring(scoring: str) -> str:
    """`scoring` if it is one of :data:`SCORINGS`, else a ValueError naming the choices."""
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {SCORINGS}")
    return scoring


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
        memory_budget_mb, score_importance: see :class:`~reclf_monai.networks.LocalMatching`.

    ``settings`` holds every argument that shapes the model, the encoders' ``settings`` included;
    checkpoints carry it (:mod:`reclf_monai.networks.checkpoints`) and
    :meth:`from_settings` rebuilds the same model from it.

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
        score_importance: bool = False,
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
        # the bundle CLI hands over words ("false" is a true string)
        learn_temperatures = switch_on(learn_temperatures, "learn_temperatures")
        score_importance = switch_on(score_importance, "score_importance")
        self.settings = {
            "aggregation": aggregation,
            "global_temperature": global_temperature,
            "local_temperature": local_temperature,
            "learn_temperatures": learn_temperatures,
            "attention_temperature": attention_temperature,
            "match_dim": match_dim,
            "relation_layers": relation_layers,
            "relation_heads": relation_heads,
            "relation_dropout": relation_dropout,
            "gloria_temp1": gloria_temp1,
            "gloria_temp2": gloria_temp2,
            "gloria_temp3": gloria_temp3,
            "memory_budget_mb": memory_budget_mb,
            "score_importance": score_importance,
            "image_encoder": dict(image_encoder.settings),
            "text_encoder": dict(text_encoder.settings),
        }
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
                score_importance=score_importance,
            )
            if aggregation == "lse":
                self.local_temperature = Temperature(1.0 / gloria_temp3, learnable=False)
            else:
                self.local_temperature = Temperature(local_temperature, learn_temperatures)
        if aggregation == "fixed_importance":
            text_encoder.enable_cls_attention()

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], image_weights: Optional[str | os.PathLike] = None, pretrained_text: bool = False
    ) -> "RECLFModel":
        """The model that ``settings`` describes, randomly initialised (weights come from a checkpoint).

        By default the text encoder is built from its configuration only (its pretrained weights
        would be overwritten by the checkpoint's anyway). The untrained baselines start where
        pretraining starts instead: `image_weights` (``imagenet`` or a file, see ``ImageEncoder``)
        and the language model's own weights (`pretrained_text`).
        """
        model_settings = {key: value for key, value in with_added_settings(settings).items() if key not in RETIRED_SETTINGS}
        image_encoder = ImageEncoder(**model_settings.pop("image_encoder"), image_weights=image_weights)
        text_encoder = TextEncoder(**model_settings.pop("text_encoder"), pretrained=pretrained_text)
        return cls(image_encoder, text_encoder, **model_settings)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "RECLFModel":
        """The pretrained model of a reclf_pretrain checkpoint, built from the settings stored in it,
        in eval mode (for scripts that score with it); DataError naming the file if it is not one."""
        return load_pretrained_weights(cls.from_settings(pretraining_settings(path)), path).eval()

    def encode_image(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """`patch_map` (B, D, h, w), `patches` (B, h*w, D) and `global` (B, D), not normalised."""
        patch_map, global_embedding = self.image_encoder(image)
        return {"patch_map": patch_map, "patches": patch_map.flatten(2).transpose(1, 2), "global": global_embedding}

    def encode_text(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """`tokens` (B, T, D), `global` (B, D), `word_mask` (B, T) (+ `cls_attention` when used)."""
        return self.text_encoder(input_ids, attention_mask)

    def global_similarity(self, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cosine of the global embeddings (B_img, B_txt): the cheap part of :meth:`similarity`."""
        return F.normalize(image_features["global"], dim=-1) @ F.normalize(text_features["global"], dim=-1).T

    def similarity(self, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unscaled scores of every image against every report (or class prompt):
        `global` cosine (B_img, B_txt) and, unless `global_only`, `local` S (B_img, B_txt).

        The same scorer serves training, zero-shot classification (prompts as reports) and retrieval.
        """
        scores = {"global": self.global_similarity(image_features, text_features)}
        if self.local_matching is not None:
            scores["local"] = self.local_matching(
                image_features["patches"],
                text_features["tokens"],
                text_features["word_mask"],
                text_features.get("cls_attention"),
            )
        return scores

    def temperatures(self) -> dict[str, torch.Tensor]:
        """Current `global` (and `local`) temperatures."""
        result = {"global": self.global_temperature()}
        if self.local_matching is not None:
            result["local"] = self.local_temperature()
        return result

    def parameter_groups(self, learning_rate: float, relation_lr_scale: float = 1.0, text_lr_scale: float = 1.0) -> list[dict[str, Any]]:
        """The trainable parameters as optimizer groups: the relation modules' (the local scorer's
        own parameters: matching embeddings, SRM, IRM; only `srm`, `irm` and `reclf` have any) at
        ``learning_rate * relation_lr_scale``, the pretrained text transformer's (not its new
        projections) at ``learning_rate * text_lr_scale``, every other one at ``learning_rate``.

        Why: SRM's score correction and IRM's output layer start at zero (plain mean matching),
        and at the encoders' rate they hardly move in a short schedule: after the demo's 168 steps
        at 3e-4, IRM's word weights were within 0.2 % of uniform. A pretrained text encoder, on the
        other hand, is usually fine-tuned at a tenth of what an image encoder trained from scratch
        needs. Parameters with the same rate share one group; with both scales 1 that is a single
        group, as a plain list of the parameters would be (so earlier optimizer states still load).
        """
        for name, scale in (("relation_lr_scale", relation_lr_scale), ("text_lr_scale", text_lr_scale)):
            if scale <= 0:
                raise ValueError(f"{name} must be positive, got {scale}")
        scales = {id(parameter): text_lr_scale for parameter in self.text_encoder.model.parameters()}
        if self.local_matching is not None:
            scales.update({id(parameter): relation_lr_scale for parameter in self.local_matching.parameters()})
        groups: dict[float, list[nn.Parameter]] = {}
        for parameter in self.parameters():
            if parameter.requires_grad:
                groups.setdefault(scales.get(id(parameter), 1.0), []).append(parameter)
        return [{"params": parameters, "lr": learning_rate * scale} for scale, parameters in groups.items()]

    def pair_logits(
        self, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor], scoring: str = "model"
    ) -> torch.Tensor:
        """One score per (image, text) pair, what retrieval ranks by and zero-shot classification
        pools over a class's prompts (:data:`SCORINGS`):

        - ``model``: global cosine / tau_global + local S / tau_local, the scores the model was
          trained on; for `lse` the local S is the log-mean-exp over words, log sum_t exp(temp2
          s_t) - log(words): log-sum-exp adds up to temp2 x ln(words) to a text for its length
          alone, which favoured long prompts (the loss keeps GLoRIA's log-sum-exp);
        - ``gloria``: GLoRIA's zero-shot score, (global cosine + temp2 x max over words of s~_t) / 2
          with GLoRIA's temp2 (5): the best-matched word, whatever the text's length.
        """
        check_scoring(scoring)
        global_cosine = self.global_similarity(image_features, text_features)
        if self.local_matching is None:
            return global_cosine if scoring == "gloria" else global_cosine / self.global_temperature()
        word_mask = text_features["word_mask"].bool()
        details = self.local_matching.match_details(
            image_features["patches"], text_features["tokens"], word_mask, text_features.get("cls_attention"), keep_details=False
        )
        if scoring == "gloria":
            word_scores = details["token_scores"].masked_fill(~word_mask, float("-inf"))
            return (global_cosine + GLORIA_ZERO_SHOT_TEMP2 * word_scores.amax(dim=-1)) / 2
        local = details["similarity"]
        if self.aggregation == "lse":
            local = local - word_mask.sum(-1).clamp_min(1).log()
        return global_cosine / self.global_temperature() + local / self.local_temperature()

    def global_pair_logits(self, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The global term of :meth:`pair_logits` alone (cosine / tau_global), from the `global`
        features only: cheap enough for every pair of a large set, so a shortlist ranks by it."""
        return self.global_similarity(image_features, text_features) / self.global_temperature()

    def contrastive_logits(self, image_features: dict[str, torch.Tensor], text_features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss inputs: `global_logits` (+ `local_logits`) and the temperatures (detached).

        One process: (B, B) logits, positives on the diagonal. Training under DDP: this rank's
        images against all N gathered reports (B, N) as `*_logits`, this rank's reports against
        all N gathered images (B, N) as `*_logits_t2i`, and `positive_offset` (rank * B), the
        column of the first positive.
        """
        temperatures = self.temperatures()
        output = {f"{name}_temperature": tau.detach() for name, tau in temperatures.items()}
        if self.training and is_distributed():
            all_images, all_texts = gather_features(image_features), gather_features(text_features)
            rows = self.similarity(image_features, all_texts)
            columns = self.similarity(all_images, text_features)
            for name, tau in temperatures.items():
                output[f"{name}_logits"] = rows[name] / tau
                output[f"{name}_logits_t2i"] = columns[name].T / tau
            output["positive_offset"] = torch.tensor(dist.get_rank() * image_features["global"].shape[0])
        else:
            scores = self.similarity(image_features, text_features)
            for name, tau in temperatures.items():
                output[f"{name}_logits"] = scores[name] / tau
        return output

    def forward(
        self,
        image: torch.Tensor,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
    ):
        """`model(image)`: normalised global image embeddings. With token ids: the loss inputs of
        :meth:`contrastive_logits` plus `image_features` and `text_features` (for evaluation metrics)."""
        if input_ids is None:
            return F.normalize(self.image_encoder(image)[1], dim=-1)
        image_features = self.encode_image(image)
        text_features = self.encode_text(input_ids, attention_mask)
        output = self.contrastive_logits(image_features, text_features)
        output["image_features"] = image_features
        output["text_features"] = text_features
        return output
