#!/usr/bin/env python
"""Did the relation modules run out of steps or out of signal? Read from a reclf_pretrain
checkpoint's AdamW state.

    python -m research.relation_training_signal --checkpoint RUN/models/checkpoint_epoch=2.pt [MORE.pt ...]

Why: after the CPU schedule IRM's word weights are uniform and SRM's corrections small
(research/notebook.md). Either AdamW had too few steps (the modules moved as far as it can move them)
or their gradients had no consistent direction (the steps cancelled). The output layers of SRM
and IRM start at exactly zero, so their final values are the path they travelled, and AdamW moves
a parameter by about its learning rate per step at most: the sum of the learning rates the
schedule applied (rebuilt from the checkpoint's WarmupCosineSchedule state) bounds that path.
Printed per checkpoint:

- per zero-started layer, travel: mean |value| / that bound. 1: every step went one way; a
  random walk of noise-signed steps gives sqrt(2/pi) sqrt(sum r^2) / sum r (printed beside it;
  about 0.8 / sqrt(steps) at a constant rate);
- per module, consistency: the mean over its parameters of |m| / sqrt(v), AdamW's bias-corrected
  moments at the last step. Near 1 when the last ~10 gradients agreed, about 0.18 when they were
  zero-mean noise (sqrt(2/pi) sqrt((1 - beta1) / (1 + beta1)) for beta1 = 0.9).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from monai.optimizers import WarmupCosineSchedule
from torch import nn

from reclf_monai.data.errors import DataError
from reclf_monai.networks import RECLFModel
from reclf_monai.networks.checkpoints import read_checkpoint

# Candidate (relation_lr_scale, text_lr_scale) to recover which parameter each optimizer state
# belongs to: parameter_groups() puts parameters with equal rates in one group, so every
# partition of the three kinds of parameters is one of these.
SCALE_PATTERNS = ((1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (2.0, 2.0), (2.0, 3.0))


def named_optimizer_states(model: RECLFModel, optimizer_state: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    """Parameter name -> its AdamW state (exp_avg, exp_avg_sq, step, betas, initial lr), matching
    the saved groups to the model's parameter_groups() with the image encoder's first 0, 1, ...
    stages frozen (``--frozen_image_stages`` is not a setting the checkpoint records); DataError
    when none fits."""
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    saved, states = optimizer_state["param_groups"], optimizer_state["state"]
    stages = model.image_encoder.features.stage_modules() if hasattr(model.image_encoder.features, "stage_modules") else []
    for frozen, scales in itertools.product(range(len(stages) + 1), SCALE_PATTERNS):
        model.image_encoder.freeze_stages(frozen)
        groups = model.parameter_groups(1.0, *scales)
        pairs = [(parameter, index, saved_group) for group, saved_group in zip(groups, saved) for parameter, index in zip(group["params"], saved_group["params"])]
        sizes_fit = [len(group["params"]) for group in groups] == [len(group["params"]) for group in saved]
        if sizes_fit and all(index in states and states[index]["exp_avg"].shape == parameter.shape for parameter, index, _ in pairs):
            return {names[id(parameter)]: {**states[index], "betas": group["betas"], "lr": group.get("initial_lr", group["lr"])} for parameter, index, group in pairs}
    raise DataError(path, "its optimizer state does not fit its network's trainable parameters")


def consistency(state: dict[str, Any]) -> float:
    """Mean |m_hat| / sqrt(v_hat) over a parameter's entries (see the module docstring)."""
    (beta1, beta2), step = state["betas"], float(state["step"])
    first = state["exp_avg"] / (1 - beta1**step)
    second = state["exp_avg_sq"] / (1 - beta2**step)
    return float((first.abs() / (second.sqrt() + 1e-12)).mean())


def applied_learning_rates(scheduler_state: dict[str, Any], base_lr: float, steps: int, path: str | None = None) -> list[float]:
    """The learning rate of each of the first `steps` steps under the run's WarmupCosineSchedule."""
    try:
        settings = {key: scheduler_state[key] for key in ("warmup_steps", "t_total", "cycles", "end_lr", "warmup_multiplier")}
    except KeyError as error:
        raise DataError(path, f"its lr_scheduler is not a WarmupCosineSchedule (no {error})") from error
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = WarmupCosineSchedule(optimizer, **settings)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def travel(values: torch.Tensor, rates: list[float]) -> tuple[float, float]:
    """Mean |value| of a zero-started tensor over the longest path AdamW could take (the summed
    rates), and the same for a random walk of noise-signed steps (sqrt(2/pi) sqrt(sum r^2) / sum r)."""
    bound = sum(rates)
    return float(values.abs().mean()) / bound, math.sqrt(2 / math.pi) * math.sqrt(sum(rate * rate for rate in rates)) / bound


def noise_consistency(beta1: float) -> float:
    """The mean |m_hat| / sqrt(v_hat) of zero-mean Gaussian gradients: sqrt(2/pi) sqrt((1-b1)/(1+b1))."""
    return math.sqrt(2 / math.pi) * math.sqrt((1 - beta1) / (1 + beta1))


def zero_started_layers(model: nn.Module) -> dict[str, str]:
    """Relation module name -> the parameter-name prefix of its zero-initialised output layer."""
    names = {id(module): name for name, module in model.named_modules()}
    return {name: names[id(module.output_layer)] for name, module in model.named_modules() if hasattr(module, "output_layer")}


def module_of(name: str, depth: int = 2) -> str:
    return ".".join(name.split(".")[:depth])


def describe(path: str) -> list[str]:
    model = RECLFModel.from_checkpoint(path)
    checkpoint = read_checkpoint(path)
    for key in ("optimizer", "lr_scheduler"):
        if key not in checkpoint:
            raise DataError(path, f"no {key} state (a training checkpoint checkpoint_epoch=E.pt has one; model.pt does not)")
    states = named_optimizer_states(model, checkpoint["optimizer"], path)
    parameters = dict(model.named_parameters())
    lines = [f"{path} ({model.settings['aggregation']})"]
    for module, prefix in zero_started_layers(model).items():
        state = states[f"{prefix}.weight"]
        rates = applied_learning_rates(checkpoint["lr_scheduler"], state["lr"], int(state["step"]), path)
        values = torch.cat([parameters[f"{prefix}.{kind}"].detach().flatten() for kind in ("weight", "bias")])
        moved, noise = travel(values, rates)
        lines.append(f"  {module}: travel {moved:.3f} of the path AdamW could take in {len(rates)} steps (a random walk: about {noise:.3f})")
    lines.append(f"  consistency of the last gradients per module (sign noise: about {noise_consistency(next(iter(states.values()))['betas'][0]):.2f}):")
    per_module: dict[str, list[float]] = {}
    for name, state in states.items():
        per_module.setdefault(module_of(name, 3 if name.startswith("local_matching") else 2), []).append(consistency(state))
    for module, values in per_module.items():
        lines.append(f"    {sum(values) / len(values):.3f}  {module} ({len(values)} tensors)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", required=True, help="reclf_pretrain training checkpoints (checkpoint_epoch=E.pt)")
    args = parser.parse_args(argv)
    for path in args.checkpoint:
        print("\n".join(describe(path)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
