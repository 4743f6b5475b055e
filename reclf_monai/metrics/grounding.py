"""Grounding metrics for phrase heatmaps against finding regions (MONAI has none for grounding).

For a heatmap H and a binary region R (same size; inside A = R, outside A' = not R):

- **Pointing game** (Zhang et al. 2016; GLoRIA, BioViL, MedKLIP): a hit when the heatmap's
  maximum lies inside R. Ties are held against the heatmap: every pixel that reaches the maximum
  must lie inside R, so a flat map never scores a hit (unless R covers the whole image).
- **Contrast-to-noise ratio** (BioViL, Boecking et al. 2022):
  CNR = (mean_A H - mean_A' H) / sqrt(var_A H + var_A' H), population variances. Positive when the
  map is higher inside the region; we keep the sign (BioViL reports |.|) so that a map avoiding
  the region scores below zero. It does not change when H is scaled by a positive factor or shifted.
  Undefined (NaN, left out of means) for an empty region or one covering the whole image; with
  both variances zero it is 0 for equal means and +/-inf otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from reclf_monai.data.grounding_items import GROUP_KEY


def _flat(heatmap: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if heatmap.shape != region.shape:
        raise ValueError(f"heatmap {tuple(heatmap.shape)} and region {tuple(region.shape)} differ in shape")
    return heatmap.detach().float().reshape(heatmap.shape[0], -1), region.detach().reshape(region.shape[0], -1) > 0.5


def pointing_game(heatmap: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) 1.0 where every maximum of the heatmap lies inside the region, else 0.0; inputs (B, ...)."""
    values, inside = _flat(heatmap, region)
    peaks = values == values.amax(dim=1, keepdim=True)
    return (peaks & ~inside).any(dim=1).logical_not().float()


def contrast_to_noise_ratio(heatmap: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) CNR of each heatmap for its region (see the module docstring); inputs (B, ...)."""
    values, inside = _flat(heatmap, region)
    results = []
    for row, mask in zip(values, inside):
        if not mask.any() or mask.all():
            results.append(torch.tensor(float("nan")))
            continue
        within, without = row[mask], row[~mask]
        difference = within.mean() - without.mean()
        noise = (within.var(unbiased=False) + without.var(unbiased=False)).sqrt()
        if noise == 0:
            results.append(torch.tensor(0.0) if difference == 0 else torch.copysign(torch.tensor(float("inf")), difference))
        else:
            results.append(difference / noise)
    return torch.stack(results).to(values.device)


class _PerImageMetric(CumulativeIterationMetric):
    """One value per (heatmap, region) pair (``score``), kept in order; ``aggregate`` is their
    mean (NaN left out). Lists of pairs of different sizes work too (images of several sizes)."""

    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return type(self).score(y_pred, y)[:, None]

    def aggregate(self) -> torch.Tensor:
        mean, _ = do_metric_reduction(self.get_buffer(), MetricReduction.MEAN)
        return mean


class PointingGameMetric(_PerImageMetric):
    """MONAI metric: pointing-game hit rate of heatmaps (B, 1, H, W) against regions of the same shape."""

    score = staticmethod(pointing_game)


class ContrastToNoiseRatioMetric(_PerImageMetric):
    """MONAI metric: mean contrast-to-noise ratio of heatmaps against regions (NaN pairs left out)."""

    score = staticmethod(contrast_to_noise_ratio)


def grounding_summary(items: Sequence[Mapping], details: Mapping[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per-group and overall means of per-item metrics.

    `details`: metric name -> per-item values (N, 1) in the order of `items` (what MONAI's
    ``IgniteMetricHandler(save_details=True)`` keeps). Items carry their `group` and
    `region_fraction` (the region's share of the image: the mean is the pointing game's chance
    level for a map whose peak falls anywhere at random), as :func:`~reclf_monai.data.grounding_items`
    writes them. Returns ``{"all": {...}, group: {...}}`` with each metric's mean (NaN values left
    out), `findings` (the count) and `region_fraction`.
    """
    values = {name: torch.as_tensor(column).detach().float().cpu().view(-1) for name, column in details.items()}
    for name, column in values.items():
        if column.numel() != len(items):
            raise ValueError(f"{name}: {column.numel()} values for {len(items)} items")
    members: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        members["all"].append(index)
        members[item[GROUP_KEY]].append(index)
    fractions = torch.tensor([float(item["region_fraction"]) for item in items])
    summary = {}
    for group, indices in sorted(members.items(), key=lambda entry: (entry[0] != "all", entry[0])):
        rows = torch.tensor(indices)
        section = {}
        for name, column in values.items():
            chosen = column[rows]
            finite = chosen[~chosen.isnan()]
            section[name] = finite.mean().item() if finite.numel() else float("nan")
        section["findings"] = float(len(indices))
        section["region_fraction"] = fractions[rows].mean().item()
        summary[group] = section
    return summary


def grounding_report(engine: Any, items: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """:func:`grounding_summary` of a grounding evaluator that kept per-item details, the
    ``summary`` of :class:`~reclf_monai.handlers.MetricsReportHandler`."""
    return grounding_summary(items, engine.state.metric_details)
