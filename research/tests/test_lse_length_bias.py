"""research/lse_length_bias.py: three scorings of one zero-shot set, log-sum-exp's length bonus
exactly ln(words) / tau_local per prompt for an `lse` model and none for the others."""

from __future__ import annotations

import json

import pytest
import torch
from bundle_testing import write_tiny_pretraining_checkpoint

from reclf_monai.networks import RECLFModel
from research import lse_length_bias

pytestmark = pytest.mark.research


@pytest.mark.parametrize("aggregation", ["lse", "mean"])
def test_log_sum_exp_adds_ln_words_over_tau_to_each_prompt_of_an_lse_model(tmp_path, aggregation):
    checkpoint = write_tiny_pretraining_checkpoint(tmp_path / "model.pt", aggregation=aggregation)
    model = RECLFModel.from_checkpoint(checkpoint)
    torch.manual_seed(0)
    images = {"patches": torch.randn(3, 16, 32), "global": torch.randn(3, 32)}
    from reclf_monai.data import TokenizeReportd

    tokenize = TokenizeReportd(max_length=48)
    prompts = ["effusion", "small left pleural effusion with basal atelectasis"]
    encoded = [tokenize({"report": prompt}) for prompt in prompts]
    with torch.no_grad():
        texts = model.encode_text(
            torch.stack([torch.as_tensor(item["input_ids"]) for item in encoded]),
            torch.stack([torch.as_tensor(item["attention_mask"]) for item in encoded]),
        )
    scores = lse_length_bias.prompt_pair_scores(model, images, texts)
    bonus = scores["log_sum_exp"] - scores["model"]
    words = texts["word_mask"].sum(-1).float()
    expected = words.log() / model.local_temperature().detach() if aggregation == "lse" else torch.zeros(2)
    torch.testing.assert_close(bonus, expected.expand_as(bonus))


def test_the_instrument_scores_a_zero_shot_set_three_ways(zero_shot_corpus, tmp_path, capsys, monkeypatch):
    checkpoint = write_tiny_pretraining_checkpoint(tmp_path / "model.pt", aggregation="lse")
    output = tmp_path / "figures.json"
    monkeypatch.setattr("sys.argv", ["lse_length_bias", "--checkpoint", str(checkpoint), "--dataset_dir", str(zero_shot_corpus), "--output", str(output)])
    lse_length_bias.main()
    result = json.loads(output.read_text())
    assert result["aggregation"] == "lse" and result["images"] > 0
    for scoring in lse_length_bias.SCORINGS:
        assert 0 <= result[scoring]["auc"] <= 1 and 0 <= result[scoring]["acc"] <= 1
        assert -1 <= result[scoring]["length_correlation"] <= 1
    assert json.loads(capsys.readouterr().out) == result
