"""The relation probe's scores from a score matrix, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from reclf_monai.metrics import relation_probe_scores

# Two cases: 0 with one finding, 1 with two. Texts: each case's report, its side swap, its negations.
CASES = [
    {"case": 0, "findings": [["Nodule", "left"]]},
    {"case": 1, "findings": [["Nodule", "left"], ["Opacity", "right"]]},
]
OWNERS = [(0, "report"), (0, "sides swapped"), (0, "negated"), (1, "report"), (1, "sides swapped"), (1, "negated"), (1, "negated")]
LABELS = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])  # images: case 0 as reported, swapped; case 1 the same


def test_a_model_that_prefers_every_true_pairing_scores_one():
    scores = torch.zeros(4, 7)
    scores[0, 0] = scores[2, 3] = 1.0  # each image as reported with its report
    result = relation_probe_scores(scores, LABELS, CASES, OWNERS)
    assert result["sides_swapped_two_findings"] == 1.0
    assert result["all/image_to_text/sides swapped"] == result["all/image_to_text/negated"] == 1.0
    assert result["all/text_to_image/sides swapped"] == 1.0
    assert (result["one finding/cases"], result["two findings/cases"], result["all/cases"]) == (1, 1, 2)


def test_shares_count_each_comparison_and_a_tie_counts_half():
    scores = torch.zeros(4, 7)
    scores[2, 3] = 1.0  # case 1's image with its report: above the side swap and both negations
    scores[2, 5] = 2.0  # but below its first negation
    scores[3, 3] = 0.5  # the swapped image scores the report below the true image
    result = relation_probe_scores(scores, LABELS, CASES, OWNERS)
    assert result["two findings/image_to_text/sides swapped"] == 1.0
    assert result["two findings/image_to_text/negated"] == 0.5  # one of two negations
    assert result["two findings/text_to_image/sides swapped"] == 1.0
    assert result["one finding/image_to_text/sides swapped"] == 0.5  # all zeros: a tie
    assert result["all/image_to_text/negated"] == pytest.approx((0.5 + 1 + 0) / 3)
    # per negated finding: case 0's nodule (a tie) and case 1's (below); case 1's opacity (above)
    assert (result["negated Nodule/image_to_text"], result["negated Opacity/image_to_text"]) == (0.25, 1.0)


def test_without_two_finding_cases_the_headline_is_not_a_number():
    result = relation_probe_scores(torch.zeros(2, 3), LABELS[:2], CASES[:1], OWNERS[:3])
    assert math.isnan(result["sides_swapped_two_findings"]) and "two findings/cases" not in result
