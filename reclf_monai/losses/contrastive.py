"""Contrastive losses over the similarity logits that :class:`~reclf_monai.networks.RECLFModel` returns."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn


class SymmetricInfoNCE(nn.Module):
    """CLIP's loss: mean of the image->report and report->image cross-entropies.

    `logits` is (B, B), image rows and report columns, with the matching pairs on the diagonal.
    (GLoRIA sums the two directions instead of averaging: a factor 2 on both its losses.)
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
            raise ValueError(f"expected square (B, B) logits, got shape {tuple(logits.shape)}")
        logits = logits.float()
        targets = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


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
        global_loss = self.info_nce(prediction["global_logits"])
        total = self.global_weight * global_loss
        parts = {"loss_global": global_loss.detach()}
        if "local_logits" in prediction:
            local_loss = self.info_nce(prediction["local_logits"])
            total = total + self.local_weight * local_loss
            parts["loss_local"] = local_loss.detach()
        for name in ("global", "local"):
            if f"{name}_temperature" in prediction:
                parts[f"temperature_{name}"] = prediction[f"{name}_temperature"].detach()
        self.parts = parts
        return total
