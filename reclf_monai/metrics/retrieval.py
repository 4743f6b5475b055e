"""Image-report retrieval metrics computed from a similarity matrix.

MONAI offers no retrieval metrics, so these few lines are written here. Rows are images, columns
are reports; ties are broken against the query (a tied wrong item ranks first), so a constant
similarity never scores as perfect retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _rank_of_best_match(similarity: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
    """0-based rank of each row's best-scoring correct item: how many wrong items score at least as high."""
    best_match = similarity.masked_fill(~matches, float("-inf")).amax(dim=1, keepdim=True)
    return ((similarity >= best_match) & ~matches).sum(dim=1)


def retrieval_recall_at_k(
    similarity: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
    report_groups: Sequence[int] | torch.Tensor | None = None,
) -> dict[str, float]:
    """Recall@K for paired data: image i belongs with report i, and with every identical report.

    `report_groups` (N,) gives items whose reports have the same text the same number (see
    :func:`reclf_monai.data.mark_duplicate_reports`). A query counts as found at K when any correct
    item ranks in the top K: for image i, any report of i's group; for report j, any image of j's
    group. Without it every report counts as distinct, which scores the retrieval of an identical
    report (in IU X-ray a quarter of the reports have a twin) as a miss.

    Returns `i2t_R@K` (image queries), `t2i_R@K` (report queries) and their mean `R@K`.
    """
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"paired retrieval needs a square similarity matrix, got {tuple(similarity.shape)}")
    similarity = similarity.detach().float()
    count = similarity.shape[0]
    groups = torch.arange(count) if report_groups is None else torch.as_tensor(report_groups).view(-1).cpu()
    if groups.shape[0] != count:
        raise ValueError(f"report_groups has {groups.shape[0]} entries for {count} pairs")
    matches = (groups.view(-1, 1) == groups.view(1, -1)).to(similarity.device)
    ranks = {"i2t": _rank_of_best_match(similarity, matches), "t2i": _rank_of_best_match(similarity.T, matches)}
    result = {}
    for k in ks:
        for direction, rank in ranks.items():
            result[f"{direction}_R@{k}"] = (rank < k).float().mean().item()
        result[f"R@{k}"] = (result[f"i2t_R@{k}"] + result[f"t2i_R@{k}"]) / 2
    return result


def class_precision_at_k(
    similarity: torch.Tensor,
    query_classes: Sequence[int] | torch.Tensor,
    gallery_classes: Sequence[int] | torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Precision@K where a retrieved item is relevant when its class equals the query's.

    This is the CheXpert 5x200 retrieval protocol (MGCA / G2D): call it with images as queries
    and reports as gallery, and with the transposed matrix for the other direction.
    """
    query = torch.as_tensor(query_classes).view(-1, 1)
    gallery = torch.as_tensor(gallery_classes).view(1, -1)
    if similarity.shape != (query.shape[0], gallery.shape[1]):
        raise ValueError(
            f"similarity {tuple(similarity.shape)} does not match {query.shape[0]} queries x {gallery.shape[1]} items"
        )
    order = similarity.detach().float().argsort(dim=1, descending=True, stable=True)
    relevant = (gallery.expand_as(similarity).gather(1, order) == query).float()
    return {f"P@{k}": relevant[:, :k].mean().item() for k in ks}
