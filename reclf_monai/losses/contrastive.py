"""Contrastive losses over the similarity logits that :class:`~reclf_monai.networks.RECLFModel` returns."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn


class SymmetricInfoNCE(nn.Module):
    """CLIP's loss: mean of the image->report and report->image cross-entropies.

    `logits` is (B, B), image rows and report columns, with the matching pairs on the diagonal.
    Under DDP a rank passes its images against all N reports (B, N) as `logits`, its reports
    against all N images (B, N) as `logits_t2i`, and the column of its first positive as
    `positive_offset`; the mean over ranks is then the single-process loss.
    (GLoRIA sums the two directions instead of averaging: a factor 2 on both its losses.)
    """

    def forward(
        self, logits: torch.Tensor, logits_t2i: Optional[torch.Tensor] = None, positive_offset: int | torch.Tensor = 0
    ) -> torch.Tensor:
        if logits_t2i is None:
            if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
                raise ValueError(f"expected square (B, B) logits, got shape {tuple(logits.shape)}")
            logits_t2i = logits.T
        elif logits.shape != logits_t2i.shape:
            raise ValueError(f"image->report {tuple(logits.shape)} and report->image {tuple(logits_t2i.shape)} logits differ in shape")
        targets = torch.arange(logits.shape[0], device=logits.device) + positive_offset
        return 0.5 * (F.cross_entropy(logits.float(), targets) + F.cross_entropy(logits_t2i.float(), targets))


class ContrastiveLoss(nn.Module):
    """lambda_g * L_global + lambda_l * L_local, each a :class:`SymmetricInfoNCE`.

    Called as ``loss(prediction, target)`` so MONAI's ``SupervisedTrainer`` can use it: `prediction`
    is the model's dict (`global_logits`, optional `local_logits`, temperatures) and `target` is
    ignored (the pairing is the target). After each call ``parts`` holds detached scalars for
    logging: `loss_global`, `loss_local` (when present), `temperature_global`, `temperature_local`.
    """

    def __init__(self, global_weight: float = 1.0, local_weight: float = 1.0):
        super().__init__()
        self.global_weight = global_weight
        self.local_weight = local_weight
        self.info_nce = SymmetricInfoNCE()
        self.parts: dict[str, torch.Tensor] = {}

    def forward(self, prediction: dict[str, torch.Tensor], target: Optional[Any] = None) -> torch.Tensor:
        offset = prediction.get("positive_offset", 0)
        global_loss = self.info_nce(prediction["global_logits"], prediction.get("global_logits_t2i"), offset)
        total = self.global_weight * global_loss
        parts = {"loss_global": global_loss.detach()}
        if "local_logits" in prediction:
            local_loss = self.info_nce(prediction["local_logits"], prediction.get("local_logits_t2i"), offset)
            total = total + self.local_weight * local_loss
            parts["loss_local"] = local_loss.detach()
        for name in ("global", "local"):
            if f"{name}_temperature" in prediction:
                parts[f"temperature_{name}"] = prediction[f"{name}_temperature"].detach()
        self.parts = parts
        return total
