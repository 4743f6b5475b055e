"""Per-iteration loss parts, temperatures and learning rate, into the run's shared TensorBoard writer.

MONAI's ``TensorBoardStatsHandler`` plots the engine output and state attributes; the contrastive
loss parts (global / local), the learnable temperatures and the optimizer's learning rate live
elsewhere (the loss's ``parts``, the optimizer), so this handler writes them next to MONAI's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from ignite.engine import Engine, Events


class TrainingScalarsHandler:
    """Write `loss_function.parts` (a name -> 0-d tensor mapping) and each param group's LR.

    Args:
        summary_writer: the run's one ``SummaryWriter`` (shared with MONAI's handlers so that a
            run has one event file).
        loss_function: an object with a ``parts`` mapping refreshed at every call.
        optimizer: its param groups' ``lr`` are written as ``lr`` (``lr/group_N`` when several).
        interval: write every `interval` iterations.
        prefix: tag prefix, e.g. ``train/``.
    """

    def __init__(self, summary_writer, loss_function: Any, optimizer: torch.optim.Optimizer, interval: int = 1, prefix: str = "train/"):
        self.writer = summary_writer
        self.loss_function = loss_function
        self.optimizer = optimizer
        self.interval = interval
        self.prefix = prefix

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        step = engine.state.iteration
        parts: Mapping[str, torch.Tensor] = getattr(self.loss_function, "parts", {}) or {}
        for name, value in parts.items():
            self.writer.add_scalar(f"{self.prefix}{name}", float(value), step)
        groups = self.optimizer.param_groups
        for index, group in enumerate(groups):
            tag = "lr" if len(groups) == 1 else f"lr/group_{index}"
            self.writer.add_scalar(f"{self.prefix}{tag}", group["lr"], step)
        self.writer.flush()


def loss_value(output: dict) -> float:
    """The loss of a trainer's (not decollated) output as a number: what ``StatsHandler`` and
    ``TensorBoardStatsHandler`` log per iteration (MONAI's ``from_engine`` gives a tuple here)."""
    return output["loss"].item()


def prediction_loss(loss_function: Callable) -> Callable[[dict], torch.Tensor]:
    """An output transform giving the loss of an evaluator's prediction (the contrastive loss needs
    no target): the validation loss ignite's ``Average`` keeps, as training computes it."""

    def transform(output: dict) -> torch.Tensor:
        return loss_function(output["pred"]).detach()

    return transform
