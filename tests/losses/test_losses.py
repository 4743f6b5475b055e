"""Contrastive losses: symmetric InfoNCE and the weighted global + local total."""

import pytest
import torch
import torch.nn.functional as F

from reclf_monai.losses import ContrastiveLoss, SymmetricInfoNCE


def test_symmetric_infonce_averages_both_directions():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.5, -0.5, 0.25]])
    image_to_report = -torch.log_softmax(logits, dim=1).diagonal().mean()
    report_to_image = -torch.log_softmax(logits, dim=0).diagonal().mean()
    assert torch.allclose(SymmetricInfoNCE()(logits), (image_to_report + report_to_image) / 2)


def test_symmetric_infonce_is_near_zero_for_confident_matches_and_log_b_for_none():
    assert SymmetricInfoNCE()(100 * torch.eye(4)) < 1e-6
    assert torch.allclose(SymmetricInfoNCE()(torch.zeros(4, 4)), torch.log(torch.tensor(4.0)))
    with pytest.raises(ValueError, match="square"):
        SymmetricInfoNCE()(torch.zeros(3, 4))


def test_contrastive_loss_weights_parts_and_reports_them():
    generator = torch.Generator().manual_seed(0)
    prediction = {
        "global_logits": torch.randn(4, 4, generator=generator),
        "local_logits": torch.randn(4, 4, generator=generator),
        "global_temperature": torch.tensor(0.07),
        "local_temperature": torch.tensor(0.1),
    }
    loss = ContrastiveLoss(global_weight=0.5, local_weight=2.0)
    total = loss(prediction, target=None)
    global_part = SymmetricInfoNCE()(prediction["global_logits"])
    local_part = SymmetricInfoNCE()(prediction["local_logits"])
    assert torch.allclose(total, 0.5 * global_part + 2.0 * local_part)
    assert torch.allclose(loss.parts["loss_global"], global_part)
    assert torch.allclose(loss.parts["loss_local"], local_part)
    assert loss.parts["temperature_global"] == pytest.approx(0.07)
    assert loss.parts["temperature_local"] == pytest.approx(0.1)


def test_contrastive_loss_without_local_logits_is_the_global_loss():
    logits = torch.randn(3, 3, requires_grad=True)
    loss = ContrastiveLoss(global_weight=1.0, local_weight=10.0)
    total = loss({"global_logits": logits})
    assert torch.allclose(total, F.cross_entropy(logits, torch.arange(3)) / 2 + F.cross_entropy(logits.T, torch.arange(3)) / 2)
    assert set(loss.parts) == {"loss_global"}
    total.backward()
    assert logits.grad.abs().sum() > 0
