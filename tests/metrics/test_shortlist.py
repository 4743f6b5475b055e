"""Global shortlist with local re-ranking: exact on its candidates, exact altogether when k covers
the set, and a correct pair outside the shortlist counted as a miss (tiny model, random features)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tiny_models import tiny_two_layer_model
from torch import nn

from reclf_monai.handlers import FeatureCollector, write_report_rankings
from reclf_monai.metrics import ClassRetrievalMetric, RetrievalMetric, retrieval_recall_at_k, score_all_pairs

PATCHES, TOKENS, DIM = 4, 6, 16  # tiny_two_layer_model's joint dimension


def random_features(images: int, texts: int, seed: int = 0) -> tuple[dict, dict]:
    generator = torch.Generator().manual_seed(seed)
    word_mask = torch.arange(TOKENS) < torch.randint(2, TOKENS + 1, (texts, 1), generator=generator)
    image_features = {"patches": torch.randn(images, PATCHES, DIM, generator=generator), "global": torch.randn(images, DIM, generator=generator)}
    text_features = {
        "tokens": torch.randn(texts, TOKENS, DIM, generator=generator),
        "global": torch.randn(texts, DIM, generator=generator),
        "word_mask": word_mask,
    }
    return image_features, text_features


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_two_layer_model("reclf").eval()


def test_k_covering_the_set_gives_the_exact_matrix(model):
    images, texts = random_features(7, 5)
    exact = score_all_pairs(model, images, texts)
    assert torch.isfinite(exact).all()
    for shortlist_k in (5, 7, 100):  # k >= the smaller side: every pair is a candidate
        assert torch.equal(score_all_pairs(model, images, texts, shortlist_k=shortlist_k), exact), shortlist_k


def test_exact_scoring_in_chunks_equals_one_chunk_and_shows_progress(model, capsys):
    images, texts = random_features(7, 5)
    whole = score_all_pairs(model, images, texts)
    assert "scoring" not in capsys.readouterr().err  # one chunk: no bar
    torch.testing.assert_close(score_all_pairs(model, images, texts, images_per_chunk=3), whole)
    assert "scoring 7 x 5 pairs: " in capsys.readouterr().err


def expected_candidates(global_logits: torch.Tensor, k: int) -> set[tuple[int, int]]:
    rows, columns = global_logits.shape
    by_image = {(i, int(j)) for i in range(rows) for j in global_logits[i].argsort(descending=True)[:k]}
    by_text = {(int(i), j) for j in range(columns) for i in global_logits[:, j].argsort(descending=True)[:k]}
    return by_image | by_text


def test_candidates_score_exactly_and_every_other_pair_below_them(model):
    images, texts = random_features(9, 8, seed=1)
    exact = score_all_pairs(model, images, texts)
    shortlisted = score_all_pairs(model, images, texts, shortlist_k=2)
    candidates = torch.zeros_like(exact, dtype=torch.bool)
    for pair in expected_candidates(model.global_pair_logits(images, texts), 2):
        candidates[pair] = True
    assert 0 < candidates.sum() < candidates.numel()
    assert torch.equal(torch.isfinite(shortlisted), candidates)
    torch.testing.assert_close(shortlisted[candidates], exact[candidates], rtol=1e-5, atol=1e-5)
    assert (shortlisted[~candidates] == float("-inf")).all()
    # every image and every text keeps at least k candidates, so the top 2 of each ranking are exact scores
    assert (candidates.sum(1) >= 2).all() and (candidates.sum(0) >= 2).all()
    for row in range(exact.shape[0]):
        order = shortlisted[row].argsort(descending=True)[:2]
        columns = candidates[row].nonzero().squeeze(1)
        assert set(order.tolist()) == set(columns[exact[row, columns].argsort(descending=True)[:2]].tolist())


class TwoTermScorer(nn.Module):
    """A stand-in whose global term is the dot product of `global` features and whose exact score
    adds the dot product of `local` features: what the shortlist needs of RECLFModel."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # the scorers read the device from a parameter

    def global_pair_logits(self, image_features, text_features):
        return image_features["global"] @ text_features["global"].T

    def pair_logits(self, image_features, text_features, scoring="model"):
        return self.global_pair_logits(image_features, text_features) + image_features["local"] @ text_features["local"].T


# image 0's report 0 scores low globally (outside both top-1 lists) and high locally
GLOBAL = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.1, 0.3, 1.0]])
LOCAL = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
# exact = GLOBAL + LOCAL: rows [5, 1, .5], [1, 0, .2], [.1, .3, 1]; top-1 shortlist {(0,1), (1,0), (2,2)}
IMAGES = {"global": GLOBAL, "local": LOCAL}
TEXTS = {"global": torch.eye(3), "local": torch.eye(3)}


def test_a_match_outside_the_shortlist_is_a_miss():
    exact = score_all_pairs(TwoTermScorer(), IMAGES, TEXTS)
    shortlisted = score_all_pairs(TwoTermScorer(), IMAGES, TEXTS, shortlist_k=1)
    assert exact[0].argmax() == 0 and shortlisted[0].argmax() == 1  # the shortlist changes image 0's ranking
    assert torch.isfinite(shortlisted).sum() == 3
    # exact: images and reports 0 and 2 find their match first (2/3 each way); shortlisted only pair 2
    assert retrieval_recall_at_k(exact, ks=(1,)) == pytest.approx({"i2t_R@1": 2 / 3, "t2i_R@1": 2 / 3, "R@1": 2 / 3})
    assert retrieval_recall_at_k(shortlisted, ks=(1,)) == pytest.approx({"i2t_R@1": 1 / 3, "t2i_R@1": 1 / 3, "R@1": 1 / 3})


@pytest.mark.parametrize("shortlist_k, expected", [(None, 2 / 3), (1, 1 / 3)])
def test_retrieval_metrics_score_the_shortlist_they_are_given(shortlist_k, expected):
    features = {"image_features": IMAGES, "text_features": TEXTS}
    recall = RetrievalMetric(TwoTermScorer(), ks=(1,), shortlist_k=shortlist_k)
    recall.update((features, torch.arange(3)))
    assert recall.compute()["R@1"] == pytest.approx(expected)
    precision = ClassRetrievalMetric(TwoTermScorer(), ["a", "b", "c"], ks=(1,), shortlist_k=shortlist_k)
    precision.update((features, torch.arange(3)))
    assert precision.compute()["P@1"] == pytest.approx(expected)


def collector(features: dict, names: list[str] | None = None) -> FeatureCollector:
    collected = FeatureCollector()
    collected.outputs, collected.items, collected.names = [features], [0, 1, 2], names or []
    return collected


def test_report_rankings_widen_the_shortlist_to_top_k(tmp_path):
    items = [{"report": f"report {index}"} for index in range(3)]
    images, reports = collector(IMAGES, ["a.png", "b.png", "c.png"]), collector(TEXTS)
    written = write_report_rankings(tmp_path / "rankings.json", TwoTermScorer(), images, reports, items, top_k=2, shortlist_k=1)
    rankings = json.loads(written.read_text(), parse_constant=lambda constant: pytest.fail(f"{constant} in the rankings"))
    assert rankings["shortlist_k"] == 2
    exact = GLOBAL + LOCAL
    for row, entry in enumerate(rankings["images"]):
        assert len(entry["reports"]) == 2
        for report in entry["reports"]:
            assert math.isfinite(report["score"]) and report["score"] == pytest.approx(exact[row, report["item"]].item())
    # top 2 by the global term for image 0 are reports 1 and 2 (and report 0 is in no report's top 2 images)
    assert [report["item"] for report in rankings["images"][0]["reports"]] == [1, 2]
    written = write_report_rankings(tmp_path / "exact.json", TwoTermScorer(), images, reports, items, top_k=2)
    assert [report["item"] for report in json.loads(written.read_text())["images"][0]["reports"]] == [0, 1]


@pytest.mark.parametrize("shortlist_k", [0, -3, 2.5, True, "5"])
def test_a_bad_shortlist_k_is_refused_with_a_clear_error(shortlist_k):
    message = "shortlist_k must be a whole number >= 1"
    with pytest.raises(ValueError, match=message):
        score_all_pairs(TwoTermScorer(), IMAGES, TEXTS, shortlist_k=shortlist_k)
    with pytest.raises(ValueError, match=message):
        RetrievalMetric(TwoTermScorer(), shortlist_k=shortlist_k)
    with pytest.raises(ValueError, match=message):
        ClassRetrievalMetric(TwoTermScorer(), ["a"], shortlist_k=shortlist_k)
