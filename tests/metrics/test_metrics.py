import pytest
import torch

from reclf_monai.data import mark_duplicate_reports
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


def test_recall_counts_an_identical_report_as_a_match():
    # Items 0 and 1 have the same report text (group 0), item 2 its own (group 2).
    # Image 0 scores report 1 (its twin) highest; report 1 scores image 0 highest; image 2 -> report 0.
    similarity = torch.tensor([[0.5, 0.9, 0.1], [0.2, 0.8, 0.3], [0.7, 0.1, 0.6]])
    groups = [0, 0, 2]
    exact = retrieval_recall_at_k(similarity, ks=(1,))
    assert exact["i2t_R@1"] == pytest.approx(1 / 3)  # only image 1 finds its own report first
    assert exact["t2i_R@1"] == pytest.approx(1 / 3)  # report 0 -> image 2, 1 -> image 0, 2 -> image 2: one right
    with_twins = retrieval_recall_at_k(similarity, ks=(1,), report_groups=groups)
    assert with_twins["i2t_R@1"] == pytest.approx(2 / 3)  # image 0 -> twin report 1 is right; image 2 still wrong
    # reports: 0 -> image 2 (other group, wrong), 1 -> image 0 (twin's image, right), 2 -> image 2 (right)
    assert with_twins["t2i_R@1"] == pytest.approx(2 / 3)
    # distinct groups give exactly the paired recall
    assert retrieval_recall_at_k(similarity, ks=(1, 2), report_groups=[0, 1, 2]) == retrieval_recall_at_k(similarity, ks=(1, 2))


def test_duplicate_reports_are_grouped_by_exact_text():
    items = [{"report": "No acute disease."}, {"report": "Small effusion."}, {"report": "No acute disease."}, {"report": "no acute disease."}]
    assert [item["report_group"] for item in mark_duplicate_reports(items)] == [0, 1, 0, 3]
    assert "report_group" not in items[0]  # the input items are left as they were


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
