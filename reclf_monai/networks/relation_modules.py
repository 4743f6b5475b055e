"""RECLF's two relation modules over the local matchings of one (image, report) pair.

Both work on *matching embeddings* m_t (one per report token, small dimension d_m) that describe
what token t matched in the image and how well, plus the token's own identity, so they can reason
between matchings instead of pooling them with a fixed rule:

- SRM (semantic relations): matchings that belong together inform each other ("opacity" and
  "right upper lobe"; "no" and "effusion"), then refine each token's matching score.
- IRM (importance relations): weights the matchings so clinically important ones count more
  than those of filler words.

Both start as the identity of plain matching (zero-initialised output layers): SRM adds a zero
correction and IRM gives uniform weights, so training starts from the `mean` aggregation.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the entries where `mask` is True; masked entries get exactly 0.

    Rows with no True entry give all zeros (not NaN), so an empty report cannot poison a batch.
    """
    filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(filled, dim=dim) * mask


class SemanticRelationModule(nn.Module):
    """SRM: self-attention between the matchings of one pair, refining each matching score.

    Input sequences are the matching embeddings of one (image, report) pair with the projected
    word identity added; padding tokens are masked out of the attention. The output
    m~_t gives a score correction g(m~_t), with g initialised to zero.
    """

    def __init__(self, match_dim: int = 64, num_layers: int = 1, num_heads: int = 4, dropout: float = 0.0):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            match_dim, num_heads, dim_feedforward=2 * match_dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(match_dim), enable_nested_tensor=False
        )
        self.score_correction = nn.Linear(match_dim, 1)
        nn.init.zeros_(self.score_correction.weight)
        nn.init.zeros_(self.score_correction.bias)

    @property
    def output_layer(self) -> nn.Linear:
        """The zero-initialised layer (see the module docstring)."""
        return self.score_correction

    def forward(
        self, matchings: torch.Tensor, word_identity: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """matchings, word_identity: (N, T, d_m); word_mask: (N, T) bool.

        Returns the relation-enhanced embeddings (N, T, d_m) and score corrections (N, T).
        """
        # A sequence with no words at all would make every attention row -inf (NaN); leave it
        # unmasked; its outputs are discarded by the caller's mask anyway.
        padding = ~word_mask & word_mask.any(dim=-1, keepdim=True)
        enhanced = self.encoder(matchings + word_identity, src_key_padding_mask=padding)
        return enhanced, self.score_correction(enhanced).squeeze(-1)


class ImportanceRelationModule(nn.Module):
    """IRM: importance weights alpha_t = masked softmax of z_t = f(matching_t, word_t), and with
    `score_importance` z_t = f(matching_t, word_t) + beta * s~_t.

    The last layer (and beta) start at zero, so the first weights are uniform over the report's
    words. Why beta: f's gradient is a covariance over the batch, sum over images of
    (p_ij - y_ij) * alpha_t * (s~_t - S_ij), that cancels unless a word's score relative to the
    report's other words tells its own image from the others; after the CPU schedule f had
    travelled about as far as a random walk (research/notebook.md). beta's gradient is the same sum of
    the spread of the pair's scores, which is larger for a matching pair (its finding words match,
    its filler words do not) than for a wrong one, so it can take one direction; the weights then
    follow how a matching scores against the pair's other matchings.
    """

    def __init__(self, match_dim: int = 64, score_importance: bool = False):
        super().__init__()
        self.importance = nn.Sequential(nn.Linear(2 * match_dim, match_dim), nn.GELU(), nn.Linear(match_dim, 1))
        nn.init.zeros_(self.importance[-1].weight)
        nn.init.zeros_(self.importance[-1].bias)
        self.score_gain = nn.Parameter(torch.zeros(())) if score_importance else None

    @property
    def output_layer(self) -> nn.Linear:
        """The zero-initialised layer (see the module docstring)."""
        return self.importance[-1]

    def forward(
        self, matchings: torch.Tensor, word_identity: torch.Tensor, word_mask: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor:
        """matchings, word_identity: (..., T, d_m); word_mask, scores s~: (..., T). Returns weights (..., T)."""
        logits = self.importance(torch.cat([matchings, word_identity], dim=-1)).squeeze(-1)
        if self.score_gain is not None:
            logits = logits + self.score_gain * scores
        return masked_softmax(logits, word_mask, dim=-1)
