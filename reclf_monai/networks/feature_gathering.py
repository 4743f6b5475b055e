"""Gather features across DDP ranks with gradients, so contrastive losses see every rank's negatives.

Under DistributedDataParallel each rank holds B of the N = world_size * B pairs of the global
batch. Each rank scores its own images against all N reports and its own reports against all N
images; the mean of the ranks' losses then equals the single-process loss on the global batch,
and DDP's gradient averaging gives the single-process gradient (the all-gather's backward sums
each slice's gradient over ranks).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_functional


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_features(features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate each tensor over ranks along dim 0 (rank order), keeping the autograd graph.

    Boolean masks travel as uint8 (not every backend reduces bool) and come back as bool.
    Every rank must hold the same batch size (use ``drop_last=True``).
    """
    gathered = {}
    for key, value in features.items():
        if value.dtype == torch.bool:
            parts = [torch.empty_like(value, dtype=torch.uint8) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, value.to(torch.uint8))
            gathered[key] = torch.cat(parts).bool()
        elif value.requires_grad:
            gathered[key] = torch.cat(dist_functional.all_gather(value))
        else:
            parts = [torch.empty_like(value) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, value.contiguous())
            gathered[key] = torch.cat(parts)
    return gathered
