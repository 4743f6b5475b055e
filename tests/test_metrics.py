import pytest
import torch

from reclf_monai.metrics import class_precision_at_k, retrieval_recall_at_k, zero_shot_classification_metrics


def test_recall_identity_is_perfect_and_reversed_is_not():
    perfect = retrieval_recall_at_k(torch.eye(6) + 0.01, ks=(1, 5))
    assert perfect["R@1"] == 1.0 and perfect["i2t_R@5"] == 1.0
    worst = retrieval_recall_at_k(-torch.eye(6), ks=(1, 5))
    assert worst["R@1"] == 0.0
    assert worst["R@5"] == 0.0  # the true item ranks last of 6


def test_recall_counts_directions_separately():
    similarity = torch.tensor([[1.0, 0.9, 0.0], [2.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    result = retrieval_recall_at_k(similarity, ks=(1, 2))
    # images: 0 right, 1 wrong (report 0 scores 2.0), 2 right.
    assert result["i2t_R@1"] == pytest.approx(2 / 3)
    # reports: 0 -> image 1 best (wrong), 1 -> image 0 best (wrong), 2 right.
    assert result["t2i_R@1"] == pytest.approx(1 / 3)
    assert result["t2i_R@2"] == pytest.approx(1.0)


def test_constant_similarity_is_not_perfect():
    assert retrieval_recall_at_k(torch.zeros(4, 4), ks=(1,))["R@1"] == 0.0


def test_recall_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        retrieval_recall_at_k(torch.zeros(2, 3))


def test_class_precision():
    similarity = torch.tensor([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]])
    result = class_precision_at_k(similarity, [0, 1], [0, 1, 1], ks=(1, 2))
    assert result["P@1"] == pytest.approx(1.0)
    assert result["P@2"] == pytest.approx((0.5 + 1.0) / 2)


def test_zero_shot_metrics():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.3, 0.4, 0.05], [0.1, 0.1, 0.8]])
    targets = [0, 1, 2, 2]
    result = zero_shot_classification_metrics(scores, targets)
    assert result["acc"] == pytest.approx(0.75)
    assert result["auc"] == pytest.approx((1 + 1 + 0.75) / 3)  # class 2: one of four pairs misordered
    perfect = zero_shot_classification_metrics(torch.eye(3), [0, 1, 2])
    assert perfect == {"auc": 1.0, "acc": 1.0, "f1": 1.0}
    with pytest.raises(ValueError, match="targets must lie"):
        zero_shot_classification_metrics(torch.eye(3), [0, 1, 3])
