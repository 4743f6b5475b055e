"""Checkpoints that carry their network's settings: rebuild, compare, refuse what does not fit."""

import pytest
import torch
from tiny_models import ONE_LAYER_BERT, tiny_one_layer_model

from reclf_monai.data.errors import DataError
from reclf_monai.networks import (
    NetworkSettings,
    RECLFModel,
    TextEncoder,
    load_pretrained_weights,
    read_network_settings,
    save_checkpoint,
    settings_differences,
)


def test_from_settings_rebuilds_the_same_network(tmp_path):
    model = tiny_one_layer_model("reclf")
    path = save_checkpoint(model, tmp_path / "model.pt")
    settings = read_network_settings(path)
    rebuilt = RECLFModel.from_settings(settings)
    assert settings_differences(settings, rebuilt.settings) == []
    load_pretrained_weights(rebuilt, path)
    image = torch.rand(2, 1, 64, 64)
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(image), model(image))


def test_checkpoints_with_a_retired_setting_still_rebuild_and_load(tmp_path):
    """Checkpoints written before block recomputation became the default carry `checkpoint_chunks`."""
    model = tiny_one_layer_model("lse")
    settings = NetworkSettings(model).state_dict()
    path = tmp_path / "old.pt"
    torch.save({"model": model.state_dict(), "network_settings": {**settings, "checkpoint_chunks": True}}, path)
    rebuilt = RECLFModel.from_settings(read_network_settings(path))
    load_pretrained_weights(rebuilt, path)
    torch.testing.assert_close(rebuilt.state_dict(), model.state_dict())


def test_checkpoints_from_before_feature_norm_rebuild_and_load_without_it(tmp_path):
    """Checkpoints written before `image_encoder.feature_norm` existed lack it; they were trained without."""
    model = tiny_one_layer_model("mean")
    settings = NetworkSettings(model).state_dict()
    del settings["image_encoder"]["feature_norm"]
    path = tmp_path / "old.pt"
    torch.save({"model": model.state_dict(), "network_settings": settings}, path)
    rebuilt = RECLFModel.from_settings(read_network_settings(path))
    assert rebuilt.image_encoder.settings["feature_norm"] is False
    load_pretrained_weights(rebuilt, path)
    with pytest.raises(DataError, match=r"image_encoder.feature_norm: checkpoint False, network True"):
        load_pretrained_weights(tiny_one_layer_model("mean", feature_norm=True), path)


def test_feature_norm_round_trips_and_is_told_apart(tmp_path):
    model = tiny_one_layer_model("reclf", feature_norm=True)
    path = save_checkpoint(model, tmp_path / "model.pt")
    rebuilt = RECLFModel.from_settings(read_network_settings(path))
    load_pretrained_weights(rebuilt, path)
    torch.testing.assert_close(rebuilt.state_dict(), model.state_dict())
    with pytest.raises(DataError, match=r"image_encoder.feature_norm: checkpoint True, network False"):
        load_pretrained_weights(tiny_one_layer_model("reclf"), path)


def test_checkpoints_from_before_score_importance_load_without_it_and_with_it_are_told_apart(tmp_path):
    """Checkpoints written before the top-level `score_importance` existed lack it; they were trained without."""
    model = tiny_one_layer_model("reclf")
    settings = NetworkSettings(model).state_dict()
    del settings["score_importance"]
    old = tmp_path / "old.pt"
    torch.save({"model": model.state_dict(), "network_settings": settings}, old)
    rebuilt = RECLFModel.from_settings(read_network_settings(old))
    assert rebuilt.settings["score_importance"] is False and rebuilt.local_matching.irm.score_gain is None
    load_pretrained_weights(rebuilt, old)
    with pytest.raises(DataError, match=r"score_importance: checkpoint False, network True"):
        load_pretrained_weights(tiny_one_layer_model("reclf", score_importance=True), old)
    path = save_checkpoint(tiny_one_layer_model("reclf", score_importance=True), tmp_path / "model.pt")
    assert "local_matching.irm.score_gain" in load_pretrained_weights(RECLFModel.from_settings(read_network_settings(path)), path).state_dict()


def test_aggregations_with_the_same_parameter_names_are_told_apart(tmp_path):
    mean, lse = tiny_one_layer_model("mean"), tiny_one_layer_model("lse")
    assert mean.state_dict().keys() == lse.state_dict().keys()  # weights alone would load silently
    path = save_checkpoint(mean, tmp_path / "model.pt")
    with pytest.raises(DataError, match=r"model.pt: checkpoint was written for another network: aggregation: checkpoint 'mean', network 'lse'"):
        load_pretrained_weights(lse, path)


def test_resnet_image_size_is_checked(tmp_path):
    path = save_checkpoint(tiny_one_layer_model(img_size=64), tmp_path / "model.pt")
    with pytest.raises(DataError, match=r"image_encoder.img_size: checkpoint 64, network 128"):
        load_pretrained_weights(tiny_one_layer_model(img_size=128), path)
    with pytest.raises(DataError, match=r"text_encoder.max_length: checkpoint 32, network 48"):
        load_pretrained_weights(tiny_one_layer_model(max_length=48), path)


def test_settings_that_change_no_weights_are_not_compared(tmp_path):
    path = save_checkpoint(tiny_one_layer_model(freeze_layers=0), tmp_path / "model.pt")
    load_pretrained_weights(tiny_one_layer_model(freeze_layers=1), path)


def test_weights_that_do_not_fit_name_the_file(tmp_path):
    model = tiny_one_layer_model()
    state = model.state_dict()
    state.pop(next(iter(state)))
    path = tmp_path / "model.pt"
    torch.save({"model": state, "network_settings": NetworkSettings(model).state_dict()}, path)
    with pytest.raises(DataError, match=r"(?s)model.pt: weights do not fit the network: .*Missing key"):
        load_pretrained_weights(tiny_one_layer_model(), path)


def test_network_settings_in_a_resume_refuse_another_network(tmp_path):
    saved = NetworkSettings(tiny_one_layer_model("mean")).state_dict()
    with pytest.raises(DataError, match=r"checkpoint_epoch=3.pt: checkpoint was written for another network: aggregation"):
        NetworkSettings(tiny_one_layer_model("lse"), source=tmp_path / "checkpoint_epoch=3.pt").load_state_dict(saved)


def test_max_length_beyond_the_position_embeddings_is_refused():
    with pytest.raises(ValueError, match=r"max_length must lie in \[2, 512\]"):
        TextEncoder(embed_dim=16, pretrained=False, config_overrides=ONE_LAYER_BERT, max_length=513)



def test_pretrained_or_untrained_reads_the_bundle_switches_as_words(tmp_path):
    from reclf_monai.networks import pretrained_or_untrained, pretraining_settings

    trained = tiny_one_layer_model("reclf")
    path = save_checkpoint(trained, tmp_path / "model.pt")
    loaded = pretrained_or_untrained(RECLFModel.from_settings(pretraining_settings(path)), str(path), "true", device="cpu")
    assert all(torch.equal(value, trained.state_dict()[name]) for name, value in loaded.state_dict().items())
    baseline = RECLFModel.from_settings(pretraining_settings(path))
    before = {name: value.clone() for name, value in baseline.state_dict().items()}
    untouched = pretrained_or_untrained(baseline, str(path), "false")
    assert all(torch.equal(value, before[name]) for name, value in untouched.state_dict().items())
    with pytest.raises(ValueError, match="no pretrained_checkpoint was given"):
        pretrained_or_untrained(baseline, "none", True)
    explicit = {"aggregation": "mean"}
    assert pretraining_settings("none", explicit_settings=explicit) == explicit
    assert pretraining_settings(path, explicit_settings=explicit)["aggregation"] == "reclf"
