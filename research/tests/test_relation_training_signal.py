"""research/relation_training_signal.py: how far AdamW moved the zero-started relation layers and
how consistent the last gradients were, told apart on runs whose gradients are known."""

from __future__ import annotations

import re

import pytest
import torch
from monai.optimizers import WarmupCosineSchedule
from tiny_models import tiny_one_layer_model

from reclf_monai.data.errors import DataError
from research import relation_training_signal as signal

pytestmark = pytest.mark.research

STEPS = 60
CHECKPOINT_STEPS = 20
TRAVEL = re.compile(r"^  (\S+): travel ([\d.]+) of the path AdamW could take in (\d+) steps \(a random walk: about ([\d.]+)\)$", re.MULTILINE)


def adam_run(parameter: torch.nn.Parameter, gradients, steps: int = STEPS) -> tuple[dict, list[float]]:
    """AdamW (no weight decay) under a warm-up/cosine schedule on one parameter; its final state
    (with betas) and the learning rates applied."""
    optimizer = torch.optim.AdamW([parameter], lr=0.01, weight_decay=0.0)
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=5, t_total=steps)
    rates = []
    for step in range(steps):
        parameter.grad = gradients(step)
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return {**optimizer.state[parameter], "betas": (0.9, 0.999)}, rates


def test_consistent_gradients_travel_the_whole_path_and_noise_a_random_walk():
    generator = torch.Generator().manual_seed(0)
    consistent = torch.nn.Parameter(torch.zeros(4096))
    state, rates = adam_run(consistent, lambda step: torch.full((4096,), 0.5))
    moved, walk = signal.travel(consistent.detach(), rates)
    assert moved == pytest.approx(1.0, abs=0.02) and signal.consistency(state) == pytest.approx(1.0, abs=0.02)

    noisy = torch.nn.Parameter(torch.zeros(4096))
    state, rates = adam_run(noisy, lambda step: torch.randn(4096, generator=generator))
    moved, walk = signal.travel(noisy.detach(), rates)
    # 4096 independent walks: their mean |value| is within a few % of the expectation; Adam's
    # normalisation by a running second moment adds some more
    assert moved == pytest.approx(walk, rel=0.15) and walk < 0.3
    assert signal.consistency(state) == pytest.approx(signal.noise_consistency(0.9), rel=0.15)


def test_the_rates_are_rebuilt_from_the_schedulers_saved_state():
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([parameter], lr=0.02)
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=4, t_total=20, end_lr=0.001)
    applied = []
    for _ in range(13):
        applied.append(optimizer.param_groups[0]["lr"])
        parameter.grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
    assert signal.applied_learning_rates(scheduler.state_dict(), 0.02, 13) == pytest.approx(applied, rel=1e-12)
    with pytest.raises(DataError, match="not a WarmupCosineSchedule"):
        signal.applied_learning_rates(torch.optim.lr_scheduler.StepLR(optimizer, 5).state_dict(), 0.02, 13)


@pytest.mark.parametrize("scales", [(1.0, 1.0), (10.0, 0.1)])  # one optimizer group; three
def test_each_layer_is_read_from_its_own_optimizer_state(tmp_path, scales, capsys):
    """A training checkpoint as reclf_pretrain writes it, after steps where IRM's output layer
    got the same gradient each time and the local scorer's other parameters noise (the encoders
    none, to keep it quick): IRM travels the whole path, SRM a random walk, whatever the optimizer
    groups (which the script must map back)."""
    model = tiny_one_layer_model("reclf")
    optimizer = torch.optim.AdamW(model.parameter_groups(0.01, *scales), lr=0.01, weight_decay=0.0)
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=2, t_total=CHECKPOINT_STEPS)
    generator, irm = torch.Generator().manual_seed(0), model.local_matching.irm.output_layer
    relation = {id(parameter) for parameter in model.local_matching.parameters()}
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter) if parameter.requires_grad else None
    for _ in range(CHECKPOINT_STEPS):
        for parameter in model.parameters():
            if id(parameter) in relation:
                parameter.grad = torch.randn(parameter.shape, generator=generator)
        irm.weight.grad, irm.bias.grad = torch.ones_like(irm.weight), torch.ones_like(irm.bias)
        optimizer.step()
        scheduler.step()
    path = tmp_path / "checkpoint_epoch=1.pt"
    torch.save({"model": model.state_dict(), "network_settings": model.settings, "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict()}, path)

    assert signal.main(["--checkpoint", str(path)]) == 0
    output = capsys.readouterr().out
    travels = {name: (float(moved), int(steps), float(walk)) for name, moved, steps, walk in TRAVEL.findall(output)}
    assert set(travels) == {"local_matching.srm", "local_matching.irm"}, output
    assert travels["local_matching.irm"][0] == pytest.approx(1.0, abs=0.02) and travels["local_matching.irm"][1] == CHECKPOINT_STEPS
    moved, _, walk = travels["local_matching.srm"]
    assert 0.3 * walk < moved < 3 * walk and moved < 0.7  # 9 values: one walk each, far from the whole path
    assert re.search(r"^    [\d.]+  image_encoder\.\w+ \(\d+ tensors\)$", output, re.MULTILINE)


def test_a_checkpoint_without_optimizer_state_is_refused(tmp_path):
    from reclf_monai.networks import save_checkpoint

    path = save_checkpoint(tiny_one_layer_model("reclf"), tmp_path / "model.pt")
    with pytest.raises(DataError, match=r"model\.pt: no optimizer state"):
        signal.describe(str(path))
