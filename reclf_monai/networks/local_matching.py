"""Word-to-region local matching for every (image, report) pair of a batch: the fast path.

For image i (patch features v_p, p = 1..P) and report j (token features w_t, t = 1..T):

    a_tp = attention of word t over regions p            (see `aggregation` for its form)
    c_t  = sum_p a_tp v_p                                 (word t's image context)
    s_t  = cos(w_t, c_t)                                  (matching score of word t)
    S_ij = aggregate_t(s_t)                               (pair similarity)

Materialising c for all B x B pairs costs B*B*T*D memory (GLoRIA loops over reports in Python to
afford it). `reclf_monai.networks.word_context` computes s and the projected contexts without c,
on blocks of (reports of similar length) x (images under `memory_budget_mb`), and recomputes each
block in the backward pass, so training memory is one block's, not B*B*T*P. The matching
embeddings that SRM/IRM need live in a small dimension d_m (c'_t = A^T c_t, again without c);
the relation modules run on image blocks too, also recomputed in the backward pass, so SRM's
attention over every pair's matchings (B*B*heads*T*T) is not kept either.

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
  With `score_importance`, IRM's logits also take beta * s~_t (see ImportanceRelationModule).

Padding: every quantity is masked by `word_mask`, so appending padding tokens never changes a score.
Everything per word (word contexts, matching embeddings, SRM, IRM) runs on reports grouped by
length, each group cut after its longest report, so short reports and prompts do not pay for the
longest report's length.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from reclf_monai.networks.length_groups import by_length_groups
from reclf_monai.networks.relation_modules import ImportanceRelationModule, SemanticRelationModule, masked_softmax
from reclf_monai.networks.word_context import AttentionForm, WordContextScores, block_terms, projected_context

LOCAL_AGGREGATIONS = ("lse", "mean", "fixed_importance", "srm", "irm", "reclf")
_USES_SRM = ("srm", "reclf")
_USES_IRM = ("irm", "reclf")

# Reports are scored in this many length groups (see `by_length_groups`): at GLoRIA's scale
# (B = 48, reports of 10-95 words) 8 groups ran `lse` in 5.7-6.2 s against 6.2-6.6 s with 4 and
# 10.5 s with 1 (2-core AMD EPYC); more groups make the matrix products too small.
_LENGTH_GROUPS = 8


class LocalMatching(nn.Module):
    """Scores all (image, report) pairs by word-to-region matching; returns S (B_img, B_txt).

    Args:
        embed_dim: D, the joint dimension of patch and token features.
        aggregation: one of LOCAL_AGGREGATIONS (see the module docstring).
        attention_temperature: tau_att of the cosine word-to-region attention (all but `lse`).
        match_dim: d_m, the dimension of matching embeddings (SRM/IRM only).
        relation_layers, relation_heads, relation_dropout: the SRM Transformer encoder.
        gloria_temp1, gloria_temp2: GLoRIA's attention sharpening and log-sum-exp temperatures (`lse`).
        score_importance: IRM's logits also take beta * s~_t, beta learned from 0 (`irm`, `reclf`).
        memory_budget_mb: bound on one block's largest tensor, (reports x tokens x images x P)
            float32 values, and on one block's estimated SRM/IRM activations; images are taken in
            chunks that respect it. Training holds a few such tensors of one block at a time,
            whatever the batch size: the word contexts and the relation modules are both
            recomputed block by block in the backward pass.
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
        score_importance: bool = False,
    ):
        super().__init__()
        self.match_dim, self.relation_heads = match_dim, relation_heads
        if aggregation not in LOCAL_AGGREGATIONS:
            raise ValueError(f"unknown local aggregation {aggregation!r}; choose one of {LOCAL_AGGREGATIONS}")
        if memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        if score_importance and aggregation not in _USES_IRM:
            raise ValueError(f"score_importance weighs IRM's matchings: aggregation {aggregation!r} has no IRM (use one of {_USES_IRM})")
        self.aggregation = aggregation
        self.attention_form = AttentionForm(gloria_temp1 if aggregation == "lse" else None, attention_temperature)
        self.gloria_temp2 = gloria_temp2
        self.memory_budget_mb = memory_budget_mb
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
        self.irm = ImportanceRelationModule(match_dim, score_importance) if aggregation in _USES_IRM else None

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
        softmax(temp2 * s), which is how log-sum-exp weighs words), `attention`
        a (B_img, B_txt, T, P) and, with SRM, `token_corrections` g (B_img, B_txt, T) (the part of
        s~ that SRM added), all 0 at padding after each report's last word. The attention is
        B*B*T*P values: meant for small batches.
        """
        if self.aggregation == "fixed_importance" and word_importance is None:
            raise ValueError("aggregation 'fixed_importance' needs word_importance (the text [CLS] attention)")
        word_mask = word_mask.bool()
        if self.aggregation != "lse":
            patches = F.normalize(patches, dim=-1)
            words = F.normalize(words, dim=-1)
        patch_match = self.patch_to_match(patches) if self.uses_matching_embeddings else None
        gram = patches @ patches.transpose(1, 2)
        word_norm = words.norm(dim=-1)

        def match_group(reports: torch.Tensor, length: int):
            group_words, group_mask = words[reports, :length], word_mask[reports, :length]
            scores, contexts, attention = self._word_contexts(
                patches, gram, group_words, word_norm[reports, :length], group_mask, patch_match, keep_details
            )
            weights = corrections = None
            if self.uses_matching_embeddings:
                scores, weights, corrections = self._relate_in_blocks(scores, contexts, group_words, group_mask, keep_details)
            return scores, weights, attention, corrections

        scores, relation_weights, attention, corrections = by_length_groups(word_mask, match_group, _LENGTH_GROUPS, report_dim=1)
        mask = word_mask.expand_as(scores)
        details = {"token_scores": scores, "attention": attention}
        if corrections is not None:
            details["token_corrections"] = corrections

        if self.aggregation == "lse":
            sharpened = self.gloria_temp2 * scores
            details["similarity"] = sharpened.masked_fill(~mask, torch.finfo(scores.dtype).min).logsumexp(-1)
            details["token_weights"] = masked_softmax(sharpened, mask)
            return details

        if relation_weights is not None:
            weights = relation_weights
        elif self.aggregation == "fixed_importance":
            importance = word_importance.detach() * word_mask
            weights = importance / importance.sum(-1, keepdim=True).clamp_min(torch.finfo(importance.dtype).tiny)
            weights = weights.expand_as(scores)
        else:
            weights = mask / mask.sum(-1, keepdim=True).clamp_min(1)
        details.update(similarity=(weights * scores).sum(-1), token_weights=weights)
        return details

    def _word_contexts(
        self,
        patches: torch.Tensor,
        gram: torch.Tensor,
        words: torch.Tensor,
        word_norm: torch.Tensor,
        word_mask: torch.Tensor,
        patch_match: Optional[torch.Tensor],
        keep_attention: bool,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """For one length group of reports (m, L, D): scores s (B_img, m, L), projected contexts
        (B_img, m, L, d_m) when `patch_match` is given, and the attention (B_img, m, L, P) when
        `keep_attention`. Blocks of images under the memory budget."""
        recompute = torch.is_grad_enabled() and not keep_attention
        chunk = self.images_per_chunk(words.shape[0], words.shape[1], patches.shape[1])
        blocks = []
        for start in range(0, patches.shape[0], chunk):
            images = slice(start, start + chunk)
            block_match = None if patch_match is None else patch_match[images]
            block = (patches[images], gram[images], words, word_norm, word_mask)
            if recompute:
                blocks.append((*WordContextScores.apply(*block, block_match, self.attention_form), None))
                continue
            terms = block_terms(*block, self.attention_form)
            contexts = None if block_match is None else projected_context(terms.attention, block_match)
            blocks.append((terms.scores, contexts, terms.attention if keep_attention else None))
        # (m, L, n, ...) blocks, images along dim 2 -> (n, m, L, ...)
        return tuple(None if column[0] is None else torch.cat(column, 2).movedim(2, 0) for column in zip(*blocks))

    def _relate_in_blocks(
        self, scores: torch.Tensor, contexts: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor, keep_details: bool
    ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """`_relate` on one length group; in training on blocks of images under the memory budget,
        each recomputed in the backward pass (``torch.utils.checkpoint``), so that SRM's attention
        over every pair's matchings (pairs x heads x L x L) is never kept for the whole batch."""
        if keep_details or not torch.is_grad_enabled():
            return self._relate(scores, contexts, words, word_mask)
        chunk = self.relation_images_per_chunk(words.shape[0], words.shape[1])
        blocks = [
            checkpoint(self._relate, scores[start : start + chunk], contexts[start : start + chunk], words, word_mask, use_reentrant=False)
            for start in range(0, scores.shape[0], chunk)
        ]
        return tuple(None if column[0] is None else torch.cat(column) for column in zip(*blocks))

    def _relate(
        self, scores: torch.Tensor, contexts: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Matching embeddings of one length group's pairs, then SRM and IRM on them.

        scores (n, m, L), contexts (n, m, L, d_m), words (m, L, D), word_mask (m, L). Returns the
        scores s~ (SRM's corrections added), IRM's weights (None without IRM) and SRM's
        corrections (None without SRM).
        """
        matchings = self.matching_embedding(torch.cat([self.word_to_match(words) * contexts, scores[..., None]], dim=-1))
        identity = self.word_identity(words).expand_as(matchings)
        images, reports, length, dim = matchings.shape
        mask = word_mask.expand(images, -1, -1)
        corrections = None
        if self.srm is not None:
            pairs = images * reports
            enhanced, correction = self.srm(
                matchings.reshape(pairs, length, dim), identity.reshape(pairs, length, dim), mask.reshape(pairs, length)
            )
            matchings = enhanced.view(images, reports, length, dim)
            corrections = correction.view(images, reports, length).masked_fill(~mask, 0.0)
            scores = scores + corrections
        weights = None if self.irm is None else self.irm(matchings, identity, mask, scores)
        return scores, weights, corrections

    def relation_images_per_chunk(self, num_reports: int, num_tokens: int) -> int:
        """How many images' pairs fit the memory budget in `_relate`, by an estimate of what one
        pair of L tokens keeps for its backward pass: SRM's attention (heads x L x L, before and
        after the softmax) and about 16 d_m-sized activations per token."""
        heads = self.relation_heads if self.srm is not None else 0
        per_image = num_reports * num_tokens * (2 * heads * num_tokens + 16 * self.match_dim) * 4
        return max(1, int(self.memory_budget_mb * 2**20 // max(per_image, 1)))

    def images_per_chunk(self, num_reports: int, num_tokens: int, num_patches: int) -> int:
        """How many images fit the memory budget for one reports x tokens x P float32 block each."""
        per_image = num_reports * num_tokens * num_patches * 4
        return max(1, int(self.memory_budget_mb * 2**20 // max(per_image, 1)))
