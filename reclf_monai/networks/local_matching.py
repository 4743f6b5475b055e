"""Word-to-region local matching for every (image, report) pair of a batch: the fast path.

For image i (patch features v_p, p = 1..P) and report j (token features w_t, t = 1..T):

    a_tp = attention of word t over regions p            (see `aggregation` for its form)
    c_t  = sum_p a_tp v_p                                 (word t's image context)
    s_t  = cos(w_t, c_t)                                  (matching score of word t)
    S_ij = aggregate_t(s_t)                               (pair similarity)

Materialising c for all B x B pairs costs B*B*T*D memory (GLoRIA loops over reports in Python to
afford it). We never build c: with G_tp = w_t . v_p (one batched matrix product for all pairs)

    w_t . c_t = sum_p a_tp G_tp              (reuses the attention logits)
    |c_t|^2   = a_t^T (V V^T) a_t            (per-image P x P Gram matrix)

so the largest tensors are B*B*T*P, processed in chunks of images under `memory_budget_mb`.
The matching embeddings that SRM/IRM need live in a small dimension d_m: with V' = V A (d_m
columns), c'_t = a_t V' = A^T c_t is exactly the projected context, again without c.

Aggregations (the ablation key; `global_only` lives in the model, which then has no local scorer):

- `lse`: GLoRIA's local similarity, exactly: raw (unnormalised) features; attention
  a_tp = softmax_p(temp1 * softmax_t(G_tp)) (first over the report's words for each region, then
  over regions); S = log sum_t exp(temp2 * s_t). GLoRIA scales S by temp3 in the loss (the model's
  local temperature 1/temp3).
- all others use cosine attention on L2-normalised features, a_tp = softmax_p(cos(w_t, v_p) / tau_att),
  contexts over the normalised patches, and a weighted mean S = sum_t alpha_t s~_t with
  - `mean`: alpha uniform over the report's words, s~ = s;
  - `fixed_importance` (MGCA-like): alpha = the text encoder's [CLS] attention over the words
    (last layer, averaged over heads; detached), masked and renormalised;
  - `srm`: alpha uniform, s~_t = s_t + g(SRM(m)_t);
  - `irm`: alpha = IRM(m, word), s~ = s;
  - `reclf`: s~ from SRM, alpha = IRM(SRM(m), word).

Padding: every quantity is masked by `word_mask`, so appending padding tokens never changes a score;
the padding after the longest report is cut before scoring, and SRM runs on reports grouped by
length (prompts and short reports do not pay for the longest report's length).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from reclf_monai.networks.relation_modules import ImportanceRelationModule, SemanticRelationModule, masked_softmax

LOCAL_AGGREGATIONS = ("lse", "mean", "fixed_importance", "srm", "irm", "reclf")
_USES_SRM = ("srm", "reclf")
_USES_IRM = ("irm", "reclf")

# Smallest |c|^2 and |w||c| used in a division (GLoRIA clamps |w||c| at 1e-8 as well).
_NORM_SQ_EPS = 1e-12
_COS_EPS = 1e-8
# SRM runs on reports in this many length groups (see LocalMatching._relate_semantically).
_SRM_LENGTH_GROUPS = 4


def _used_length(word_mask: torch.Tensor) -> int:
    """Tokens up to the last word of any report: what follows is padding in every report."""
    positions = torch.arange(1, word_mask.shape[-1] + 1, device=word_mask.device)
    return max(int(torch.where(word_mask, positions, 0).max()), 1)


class LocalMatching(nn.Module):
    """Scores all (image, report) pairs by word-to-region matching; returns S (B_img, B_txt).

    Args:
        embed_dim: D, the joint dimension of patch and token features.
        aggregation: one of LOCAL_AGGREGATIONS (see the module docstring).
        attention_temperature: tau_att of the cosine word-to-region attention (all but `lse`).
        match_dim: d_m, the dimension of matching embeddings (SRM/IRM only).
        relation_layers, relation_heads, relation_dropout: the SRM Transformer encoder.
        gloria_temp1, gloria_temp2: GLoRIA's attention sharpening and log-sum-exp temperatures (`lse`).
        memory_budget_mb: bound on the largest intermediate, n_img * B_txt * T * P float32 values;
            images are processed in chunks of n_img to respect it.
        checkpoint_chunks: recompute each chunk in the backward pass (torch.utils.checkpoint), so
            training memory follows the budget instead of growing with B^2.
    """

    def __init__(
        self,
        embed_dim: int,
        aggregation: str = "reclf",
        attention_temperature: float = 0.1,
        match_dim: int = 64,
        relation_layers: int = 1,
        relation_heads: int = 4,
        relation_dropout: float = 0.0,
        gloria_temp1: float = 4.0,
        gloria_temp2: float = 5.0,
        memory_budget_mb: float = 512.0,
        checkpoint_chunks: bool = False,
    ):
        super().__init__()
        if aggregation not in LOCAL_AGGREGATIONS:
            raise ValueError(f"unknown local aggregation {aggregation!r}; choose one of {LOCAL_AGGREGATIONS}")
        if memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self.aggregation = aggregation
        self.attention_temperature = attention_temperature
        self.gloria_temp1 = gloria_temp1
        self.gloria_temp2 = gloria_temp2
        self.memory_budget_mb = memory_budget_mb
        self.checkpoint_chunks = checkpoint_chunks
        self.uses_matching_embeddings = aggregation in _USES_SRM + _USES_IRM
        if self.uses_matching_embeddings:
            self.patch_to_match = nn.Linear(embed_dim, match_dim, bias=False)
            self.word_to_match = nn.Linear(embed_dim, match_dim, bias=False)
            self.word_identity = nn.Linear(embed_dim, match_dim)
            self.matching_embedding = nn.Sequential(nn.Linear(match_dim + 1, match_dim), nn.LayerNorm(match_dim))
        self.srm = (
            SemanticRelationModule(match_dim, relation_layers, relation_heads, relation_dropout)
            if aggregation in _USES_SRM
            else None
        )
        self.irm = ImportanceRelationModule(match_dim) if aggregation in _USES_IRM else None

    def forward(
        self,
        patches: torch.Tensor,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        word_importance: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """patches (B_img, P, D), words (B_txt, T, D), word_mask (B_txt, T) bool (False for
        [PAD]/[CLS]/[SEP]), word_importance (B_txt, T) for `fixed_importance`. Returns S (B_img, B_txt)."""
        return self.match_details(patches, words, word_mask, word_importance, keep_details=False)["similarity"]

    def match_details(
        self,
        patches: torch.Tensor,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        word_importance: Optional[torch.Tensor] = None,
        keep_details: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Like forward, also returning per-token details (for grounding and inspection):

        `token_scores` s~ (B_img, B_txt, T), `token_weights` alpha (B_img, B_txt, T) (for `lse`,
        softmax(temp2 * s), which is how log-sum-exp weighs words) and `attention`
        a (B_img, B_txt, T, P), all 0 at the padding after the longest report. The attention is
        B*B*T*P values: meant for small batches.
        """
        if self.aggregation == "fixed_importance" and word_importance is None:
            raise ValueError("aggregation 'fixed_importance' needs word_importance (the text [CLS] attention)")
        word_mask = word_mask.bool()
        full_length = words.shape[1]
        used = _used_length(word_mask)
        words, word_mask = words[:, :used], word_mask[:, :used]
        if word_importance is not None:
            word_importance = word_importance[:, :used]
        if self.aggregation != "lse":
            patches = F.normalize(patches, dim=-1)
            words = F.normalize(words, dim=-1)
        gram = patches @ patches.transpose(1, 2)
        word_norm = words.norm(dim=-1)
        if self.uses_matching_embeddings:
            patch_match = self.patch_to_match(patches)
            word_match = self.word_to_match(words)
            word_identity = self.word_identity(words)
        else:
            patch_match = word_match = word_identity = None
        if self.aggregation == "fixed_importance":
            importance = word_importance.detach() * word_mask
            importance = importance / importance.sum(-1, keepdim=True).clamp_min(torch.finfo(importance.dtype).tiny)
        else:
            importance = None

        chunk = self.images_per_chunk(words.shape[0], words.shape[1], patches.shape[1])
        outputs = []
        for start in range(0, patches.shape[0], chunk):
            args = (
                patches[start : start + chunk],
                gram[start : start + chunk],
                None if patch_match is None else patch_match[start : start + chunk],
                words,
                word_norm,
                word_match,
                word_identity,
                word_mask,
                importance,
            )
            if self.checkpoint_chunks and torch.is_grad_enabled():
                result = checkpoint(self._score_chunk, *args, use_reentrant=False)
            else:
                result = self._score_chunk(*args)
            outputs.append(result if keep_details else result[:1])
        names = ("similarity", "token_scores", "token_weights", "attention")
        details = {name: torch.cat(parts, dim=0) for name, parts in zip(names, zip(*outputs))}
        if keep_details and used < full_length:  # the trimmed padding scores 0 and weighs 0
            padding = full_length - used
            for name in ("token_scores", "token_weights"):
                details[name] = F.pad(details[name], (0, padding))
            details["attention"] = F.pad(details["attention"], (0, 0, 0, padding))
        return details

    def _relate_semantically(
        self, matchings: torch.Tensor, identity: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SRM over the matchings of every (image, report) pair (n, B_txt, T, d_m).

        Reports are grouped by length and each group is cut after its longest report, so the
        Transformer does not run over padding (a batch's median report is about 2/3 of its
        longest); masked positions never change a result, so this equals one padded pass.
        Returns the enhanced matchings and the score corrections (n, B_txt, T), zero at the cut.
        """
        images, reports, tokens, dim = matchings.shape
        lengths = torch.where(word_mask, torch.arange(1, tokens + 1, device=word_mask.device), 0).amax(-1)
        order = lengths.argsort()
        enhanced_parts, correction_parts = [], []
        for group in order.chunk(min(_SRM_LENGTH_GROUPS, reports)):
            length = max(int(lengths[group].max()), 1)
            pairs = images * len(group)
            enhanced, correction = self.srm(
                matchings[:, group, :length].reshape(pairs, length, dim),
                identity[:, group, :length].reshape(pairs, length, dim),
                word_mask[group, :length].expand(images, -1, -1).reshape(pairs, length),
            )
            cut = tokens - length
            enhanced_parts.append(F.pad(enhanced.view(images, len(group), length, dim), (0, 0, 0, cut)))
            correction_parts.append(F.pad(correction.view(images, len(group), length), (0, cut)))
        restore = order.argsort()
        return torch.cat(enhanced_parts, 1)[:, restore], torch.cat(correction_parts, 1)[:, restore]

    def images_per_chunk(self, num_reports: int, num_tokens: int, num_patches: int) -> int:
        """How many images fit the memory budget for one B_txt x T x P float32 block each."""
        per_image = num_reports * num_tokens * num_patches * 4
        return max(1, int(self.memory_budget_mb * 2**20 // max(per_image, 1)))

    def _attention(self, sims: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """Word-to-region attention a (n, B_txt, T, P) from the word-region similarities."""
        if self.aggregation == "lse":
            # GLoRIA: normalise over the report's words for each region, sharpen, then over regions.
            words_only = sims.masked_fill(~word_mask[None, :, :, None], torch.finfo(sims.dtype).min)
            return torch.softmax(self.gloria_temp1 * torch.softmax(words_only, dim=2), dim=-1)
        return torch.softmax(sims / self.attention_temperature, dim=-1)

    def _score_chunk(
        self,
        patches: torch.Tensor,
        gram: torch.Tensor,
        patch_match: Optional[torch.Tensor],
        words: torch.Tensor,
        word_norm: torch.Tensor,
        word_match: Optional[torch.Tensor],
        word_identity: Optional[torch.Tensor],
        word_mask: torch.Tensor,
        importance: Optional[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Similarity (n, B_txt), token scores and weights (n, B_txt, T), attention (n, B_txt, T, P)."""
        sims = torch.einsum("jtd,ipd->ijtp", words, patches)
        attention = self._attention(sims, word_mask)
        word_dot_context = (attention * sims).sum(-1)
        context_norm_sq = (torch.einsum("ijtp,ipq->ijtq", attention, gram) * attention).sum(-1)
        scores = word_dot_context / (word_norm * context_norm_sq.clamp_min(_NORM_SQ_EPS).sqrt()).clamp_min(_COS_EPS)
        mask = word_mask.expand_as(scores)

        if self.aggregation == "lse":
            sharpened = self.gloria_temp2 * scores
            similarity = sharpened.masked_fill(~mask, torch.finfo(scores.dtype).min).logsumexp(-1)
            return similarity, scores, masked_softmax(sharpened, mask), attention

        if importance is not None:
            weights = importance.expand_as(scores)
        else:
            weights = mask / mask.sum(-1, keepdim=True).clamp_min(1)
        if self.uses_matching_embeddings:
            context_match = torch.einsum("ijtp,ipm->ijtm", attention, patch_match)
            matchings = self.matching_embedding(torch.cat([word_match * context_match, scores[..., None]], dim=-1))
            identity = word_identity.expand_as(matchings)
            if self.srm is not None:
                matchings, correction = self._relate_semantically(matchings, identity, word_mask)
                scores = scores + correction
            if self.irm is not None:
                weights = self.irm(matchings, identity, mask)
        similarity = (weights * scores).sum(-1)
        return similarity, scores, weights, attention
