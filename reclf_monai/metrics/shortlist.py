"""Global shortlist, local re-ranking: scoring a whole set without the local scorer on every pair.

The exact pair score (``RECLFModel.pair_logits``: global cosine / tau_global + local S / tau_local)
runs the word-to-region scorer with SRM/IRM, which costs far more per pair than the global cosine.
A shortlist ranks every pair by the global term alone (``RECLFModel.global_pair_logits``), keeps
each image's `k` best texts and each text's `k` best images, and scores only the union of those
candidate pairs exactly. Rankings in both directions then come from exact scores among the
candidates: every row and every column holds at least `k` of them, so Recall@K and Precision@K
with K <= k read exact scores only.

Every other pair scores -inf, below every candidate. Non-candidates tie with each other (a stable
sort keeps them in index order; the retrieval metrics count a tie against the query), so a correct
pair that the global term ranks outside both top-k lists counts as a miss even where its exact
score would have ranked it high: the price of the shortlist, measured in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import nn

from reclf_monai.bundle_switches import optional_setting

NOT_SHORTLISTED = float("-inf")


def check_shortlist_k(shortlist_k: Any) -> Optional[int]:
    """`shortlist_k` itself when it is a whole number >= 1, None for None or the word none/null (exact
    all-pairs; the bundle CLI hands words through as strings); a clear error otherwise (0 would
    shortlist nothing, and a bool or float is a mistake, not a count)."""
    shortlist_k = optional_setting(shortlist_k)
    if shortlist_k is None or (isinstance(shortlist_k, int) and not isinstance(shortlist_k, bool) and shortlist_k >= 1):
        return shortlist_k
    raise ValueError(
        f"shortlist_k must be a whole number >= 1 (candidates kept per image and per text) or None/null "
        f"for exact all-pairs scoring, got {shortlist_k!r}"
    )


def shortlist_candidates(global_logits: torch.Tensor, shortlist_k: int) -> torch.Tensor:
    """(N_img, N_txt) bool: True where the text is among the image's `shortlist_k` best by
    `global_logits`, or the image among the text's."""
    candidates = torch.zeros_like(global_logits, dtype=torch.bool)
    candidates.scatter_(1, global_logits.topk(min(shortlist_k, global_logits.shape[1]), dim=1).indices, True)
    candidates.scatter_(0, global_logits.topk(min(shortlist_k, global_logits.shape[0]), dim=0).indices, True)
    return candidates


@torch.no_grad()
def score_shortlisted_pairs(
    model: nn.Module, image_features: Mapping, text_features: Mapping, shortlist_k: int, scoring: str = "model"
) -> torch.Tensor:
    """(N_img, N_txt) on the CPU: ``model.pair_logits`` (with `scoring`) on the shortlisted pairs,
    -inf elsewhere; the shortlist itself ranks by the global cosine, as either scoring contains it.

    One exact call per image, on that image's candidates only, so the local scorer never sees a
    pair outside the shortlist. `model` is the unwrapped RECLF model; features may live anywhere.
    """
    device = next(model.parameters()).device
    texts = {key: value.to(device) for key, value in text_features.items()}
    global_logits = model.global_pair_logits({"global": image_features["global"].to(device)}, texts)
    candidates = shortlist_candidates(global_logits, check_shortlist_k(shortlist_k)).cpu()
    logits = torch.full(candidates.shape, NOT_SHORTLISTED)
    for row, shortlisted in enumerate(candidates):
        columns = shortlisted.nonzero().squeeze(1)
        image = {key: value[row : row + 1].to(device) for key, value in image_features.items()}
        candidate_texts = {key: value[columns.to(device)] for key, value in texts.items()}
        logits[row, columns] = model.pair_logits(image, candidate_texts, scoring)[0].float().cpu()
    return logits
