"""Contrastive temperature: one small module so models can hold it as a parameter or a constant."""

from __future__ import annotations

import math

import torch
from torch import nn


class Temperature(nn.Module):
    """A temperature tau for logits = similarity / tau, fixed or learned.

    Learned as log(tau) (CLIP's parametrisation, so tau stays positive) and clamped to
    [minimum, maximum] on use, which keeps the logits from exploding early in training.
    Living inside the network means the optimiser, checkpoints and DDP see it for free.
    """

    def __init__(self, initial: float = 0.07, learnable: bool = True, minimum: float = 0.01, maximum: float = 1.0):
        super().__init__()
        if not 0 < minimum <= initial <= maximum:
            raise ValueError(f"temperature needs 0 < minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}")
        log_tau = torch.tensor(math.log(initial))
        if learnable:
            self.log_tau = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_tau", log_tau)
        self.minimum = minimum
        self.maximum = maximum

    def forward(self) -> torch.Tensor:
        return self.log_tau.exp().clamp(self.minimum, self.maximum)
