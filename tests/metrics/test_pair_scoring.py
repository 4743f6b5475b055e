"""How evaluation scores an (image, text) pair: the model's own scores with log-sum-exp's length
bias removed, and GLoRIA's zero-shot scoring (best word, best prompt, classes standardised)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import TWO_LAYER_BERT

from reclf_monai.metrics import ZeroShotMetric
from reclf_monai.metrics.zero_shot import class_scores_from_prompts, standardise_classes
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder


def tiny_model(aggregation: str) -> RECLFModel:
    torch.manual_seed(0)
    return RECLFModel(
        ImageEncoder("resnet18", embed_dim=16),
        TextEncoder(embed_dim=16, pretrained=False, config_overrides=TWO_LAYER_BERT),
        aggregation,
    ).eval()


def features(model: RECLFModel, reports: list[str]):
    from reclf_monai.data import TokenizeReportd

    tokenize = TokenizeReportd(max_length=16)
    tokens = [tokenize({"report": report}) for report in reports]
    input_ids = torch.stack([torch.as_tensor(item["input_ids"]) for item in tokens])
    attention_mask = torch.stack([torch.as_tensor(item["attention_mask"]) for item in tokens])
    images = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(input_ids, attention_mask)


REPORTS = ["effusion", "small left pleural effusion with basal atelectasis", "no acute disease"]


def test_lse_pairs_are_scored_by_the_log_mean_exp_over_words():
    model = tiny_model("lse")
    images, texts = features(model, REPORTS)
    with torch.no_grad():
        scores = model.pair_logits(images, texts)
        log_sum_exp = model.similarity(images, texts)
    words = texts["word_mask"].sum(-1).float()
    assert words.tolist()[0] < words.tolist()[1]  # texts of different lengths
    expected = (
        log_sum_exp["global"] / model.global_temperature() + (log_sum_exp["local"] - words.log()) / model.local_temperature()
    )
    torch.testing.assert_close(scores, expected)
    for aggregation in ("mean", "reclf"):  # the other scorers average over words already: unchanged
        other = tiny_model(aggregation)
        images, texts = features(other, REPORTS)
        with torch.no_grad():
            combined = other.similarity(images, texts)
            expected = combined["global"] / other.global_temperature() + combined["local"] / other.local_temperature()
            torch.testing.assert_close(other.pair_logits(images, texts), expected)


@pytest.mark.parametrize("aggregation", ["lse", "reclf"])
def test_gloria_scoring_averages_the_global_cosine_and_five_times_the_best_word(aggregation):
    model = tiny_model(aggregation)
    images, texts = features(model, REPORTS)
    with torch.no_grad():
        scores = model.pair_logits(images, texts, "gloria")
        words = model.local_matching.match_details(images["patches"], texts["tokens"], texts["word_mask"])["token_scores"]
    cosine = model.global_similarity(images, texts)
    for i in range(3):
        for j in range(3):
            best_word = max(float(words[i, j, t]) for t in range(words.shape[-1]) if texts["word_mask"][j, t])
            assert math.isclose(float(scores[i, j]), (float(cosine[i, j]) + 5 * best_word) / 2, rel_tol=1e-5, abs_tol=1e-6)
    with pytest.raises(ValueError, match="unknown scoring 'glorai'"):
        model.pair_logits(images, texts, "glorai")


def test_gloria_takes_each_class_best_prompt_and_standardises_each_class_over_the_images():
    pair_scores = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    owners = torch.tensor([0, 0, 1])
    assert class_scores_from_prompts(pair_scores, owners, 2, "gloria").tolist() == [[3.0, 2.0], [0.0, 5.0]]
    assert class_scores_from_prompts(pair_scores, owners, 2, "model").tolist() == [[2.0, 2.0], [-0.5, 5.0]]
    scores = torch.tensor([[3.0, 2.0], [0.0, 5.0], [1.5, 8.0]])
    standardised = standardise_classes(scores)
    torch.testing.assert_close(standardised.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(standardised.std(0), torch.ones(2))
    assert standardised.argsort(0).tolist() == scores.argsort(0).tolist()  # each class ranks its images alike


def test_zero_shot_metric_with_gloria_scoring_reports_standardised_class_scores():
    model = tiny_model("reclf")
    from reclf_monai.data import TokenizeReportd

    metric = ZeroShotMetric(
        model,
        {"a": ["effusion", "pleural effusion"], "b": ["no acute disease"]},
        ["a", "b"],
        TokenizeReportd(max_length=16),
        scoring="gloria",
    )
    images, _ = features(model, REPORTS)
    metric.update((images, torch.tensor([0, 1, 0])))
    scores = metric.class_scores()
    torch.testing.assert_close(scores.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    assert set(metric.compute()) >= {"auc", "acc", "f1"}
