"""Run a per-report computation on reports grouped by length, each group cut after its longest one.

Reports are padded to one length T, but a batch's median report is about 2/3 of its longest. The
text encoder and the local scorer compute per token, and a padded position never changes a real
token's result (it is masked), so running sorted groups of reports at their own length gives the
same results as one padded pass at a fraction of the cost.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F


def report_lengths(mask: torch.Tensor) -> torch.Tensor:
    """(B,) the position after each report's last True entry of `mask` (B, T) (0 for none)."""
    positions = torch.arange(1, mask.shape[-1] + 1, device=mask.device)
    return torch.where(mask.bool(), positions, 0).amax(-1)


def by_length_groups(
    mask: torch.Tensor,
    run: Callable[[torch.Tensor, int], tuple[Optional[torch.Tensor], ...]],
    groups: int,
    report_dim: int = 0,
) -> tuple[Optional[torch.Tensor], ...]:
    """Runs ``run(reports, length)`` on `groups` groups of reports sorted by length (from `mask`,
    (B, T)), each cut after its longest report, and puts the outputs back in report order along
    `report_dim`, zero-padded to T along the dimension after it. Outputs may be None."""
    tokens = mask.shape[-1]
    lengths = report_lengths(mask)
    order = lengths.argsort()
    parts = []
    for group in order.chunk(min(groups, len(order))):
        length = max(int(lengths[group].max()), 1)
        outputs = run(group, length)
        parts.append([None if out is None else _pad_dim(out, report_dim + 1, tokens - length) for out in outputs])
    restore = order.argsort()
    return tuple(
        None if column[0] is None else torch.cat(column, report_dim).index_select(report_dim, restore)
        for column in zip(*parts)
    )


def _pad_dim(tensor: torch.Tensor, dim: int, amount: int) -> torch.Tensor:
    """`tensor` with `amount` zeros appended along `dim`."""
    return F.pad(tensor, (0, 0) * (tensor.dim() - dim - 1) + (0, amount))
