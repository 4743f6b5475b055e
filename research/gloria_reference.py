"""GLoRIA's local similarity the slow, literal way: one report at a time, contexts materialised.

This is the readable specification of ``LocalMatching(aggregation="lse")``: the tests check the
fast path against it and ``research/benchmark_local_matching.py`` times both. Like GLoRIA's
published loss it loops over reports in Python and, for each, builds every image's word contexts
(B x T_j x D) before taking cosines, so it costs B*B*T*D memory traffic and a slow backward pass.
"""

from __future__ import annotations

import torch


def gloria_local_similarity(
    patches: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    temp1: float = 4.0,
    temp2: float = 5.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """S (B_img, B_txt): S_ij = log sum_t exp(temp2 * cos(w_t, c_t)) over report j's words.

    patches (B_img, P, D), words (B_txt, T, D), word_mask (B_txt, T) bool. The attention is
    GLoRIA's: for each region, a softmax over the report's words; sharpened by temp1; then a
    softmax over regions for each word. The local logits are temp3 * S.
    """
    columns = []
    for report, mask in zip(words, word_mask.bool()):
        report = report[mask]  # (n_j, D): the report's words only
        region_word = torch.einsum("ipd,td->ipt", patches, report)
        attention = torch.softmax(region_word, dim=2)  # over words, for each region
        attention = torch.softmax(temp1 * attention.transpose(1, 2), dim=2)  # over regions, for each word
        context = attention @ patches  # (B_img, n_j, D): materialised
        cosine = (context * report).sum(-1) / (context.norm(dim=-1) * report.norm(dim=-1)).clamp(min=eps)
        columns.append(torch.log(torch.exp(temp2 * cosine).sum(dim=1)))
    return torch.stack(columns, dim=1)
