"""ImageNet initialisation of the image encoder: torchvision's ResNet files (built here from
torchvision's key names and shapes, not from this project's networks), the EfficientNet-Lite0 file
that ships in its package, grey input in ImageNet form, and the errors for files that do not fit
or cannot be had."""

from __future__ import annotations

import pytest
import torch
from tiny_models import ONE_LAYER_BERT
from torch import nn
from torchvision_layout import torchvision_file

from reclf_monai.data import DataError
from reclf_monai.networks import (
    ImageClassifier,
    ImageEncoder,
    PretrainedUNet,
    RECLFModel,
    TextEncoder,
    imagenet_weights,
    save_checkpoint,
)
from reclf_monai.networks.efficientnet_lite import LITE_MEAN, LITE_STD
from reclf_monai.networks.imagenet_weights import TORCHVISION_MEAN, TORCHVISION_STD, ImageNetInput, imagenet_file


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_a_torchvision_resnet_file_loads_without_its_classifier(tmp_path, name):
    state = torchvision_file(tmp_path / f"{name}.pth", name)
    encoder = ImageEncoder(name, embed_dim=16, image_weights=tmp_path / f"{name}.pth")
    loaded = encoder.features.backbone.state_dict()
    assert set(loaded) == set(state) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    assert encoder.settings["imagenet_input"] is True


def test_a_file_that_does_not_fit_names_the_file_and_the_keys(tmp_path):
    torchvision_file(tmp_path / "resnet34.pth", "resnet34")
    with pytest.raises(
        DataError, match=r"resnet34.pth: a weight file of resnet34; the encoder is resnet18 \(give --backbone resnet34\)"
    ):
        ImageEncoder("resnet18", image_weights=tmp_path / "resnet34.pth")
    state = torchvision_file(tmp_path / "grey.pth", "resnet18")
    torch.save({**state, "conv1.weight": state["conv1.weight"][:, :1]}, tmp_path / "grey.pth")
    with pytest.raises(DataError, match=r"grey.pth: image weights do not fit the ResNet: wrong shapes \(1\): conv1.weight"):
        ImageEncoder("resnet18", image_weights=tmp_path / "grey.pth")
    with pytest.raises(DataError, match="missing.pth: image weights file not found"):
        ImageEncoder("resnet18", image_weights=tmp_path / "missing.pth")
    (tmp_path / "garbage.pth").write_text("not a checkpoint")
    with pytest.raises(DataError, match="garbage.pth: not a readable"):
        ImageEncoder("resnet18", image_weights=tmp_path / "garbage.pth")
    with pytest.raises(ValueError, match="not 'vit'"):
        ImageEncoder("vit", img_size=64, image_weights="imagenet")


def test_imagenet_resolves_through_the_torch_hub_cache_and_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setitem(imagenet_weights.TORCHVISION_RESNET_URLS, "resnet18", "http://127.0.0.1:9/resnet18-f37072fd.pth")
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(RuntimeError, match=f"could not download .*resnet18.*Offline, copy that file to {cached}"):
        ImageEncoder("resnet18", image_weights="imagenet")
    state = torchvision_file(cached, "resnet18")
    assert imagenet_file("resnet18") == str(cached)
    encoder = ImageEncoder("resnet18", embed_dim=16, image_weights="imagenet")
    assert torch.equal(encoder.features.backbone.conv1.weight, state["conv1.weight"])


def test_grey_input_reaches_the_stem_as_the_normalised_rgb_image():
    grey = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    rgb = torch.cat([(grey - mean) / std for mean, std in zip(TORCHVISION_MEAN, TORCHVISION_STD)], dim=1)
    torch.testing.assert_close(ImageNetInput(TORCHVISION_MEAN, TORCHVISION_STD)(grey), rgb)
    encoder = ImageEncoder("resnet18", embed_dim=16, imagenet_input=True).eval()
    with torch.no_grad():
        through_the_encoder = encoder.features.stages(grey)[1]
        encoder.features.input_adapter = nn.Identity()
        by_hand = encoder.features.stages(rgb)[1]
    torch.testing.assert_close(through_the_encoder, by_hand)
    assert encoder.features.backbone.conv1.weight.shape[1] == 3
    assert not any("downsample.0.bias" in key for key in encoder.state_dict())


def test_efficientnet_lite0_loads_every_tensor_of_the_packaged_imagenet_file():
    path = imagenet_file("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert len(state) == 296
    encoder = ImageEncoder("efficientnet-lite0", embed_dim=16, img_size=64, image_weights="imagenet")
    backbone = encoder.features.backbone
    loaded = backbone.state_dict()
    assert len(loaded) == len(state) - 2  # all but the ImageNet classifier _fc.weight/_fc.bias
    assert torch.equal(backbone._conv_stem.weight, state["_conv_stem.weight"])
    last_block = [block for stage in backbone._blocks for block in stage][15]
    assert torch.equal(last_block._project_conv.weight, state["_blocks.15._project_conv.weight"])
    assert torch.equal(backbone._bn1.running_var, state["_bn1.running_var"])
    activations = {
        type(module) for module in backbone.modules() if type(module).__name__ in ("ReLU6", "MemoryEfficientSwish", "Swish")
    }
    assert activations == {nn.ReLU6}
    assert not any("_se_" in key for key in loaded)
    grey = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(encoder.features.input_adapter(grey), (grey.expand(-1, 3, -1, -1) - LITE_MEAN[0]) / LITE_STD[0])


def test_the_imagenet_lite0_encoder_carries_into_the_unet(tmp_path):
    model = RECLFModel(
        ImageEncoder("efficientnet-lite0", embed_dim=16, img_size=64, image_weights="imagenet"),
        TextEncoder(embed_dim=16, pretrained=False, config_overrides=ONE_LAYER_BERT),
        "mean",
    )
    checkpoint = save_checkpoint(model, tmp_path / "model.pt")
    unet = PretrainedUNet(pretrained_checkpoint=checkpoint, decoder_channels=(32, 16, 16, 8, 8))
    assert unet.settings["image_encoder"]["imagenet_input"] is True
    stored = torch.load(checkpoint, weights_only=True)["model"]
    assert torch.equal(unet.encoder.backbone._conv_stem.weight, stored["image_encoder.features.backbone._conv_stem.weight"])
    assert unet(torch.rand(2, 1, 64, 64)).shape == (2, 1, 64, 64)


# ------------------------------------------------------------------ foreign encoders as downstream baselines


def gloria_checkpoint(path, backbone_state):
    """GLoRIA's Lightning checkpoint: the GLoRIA model under ``gloria.``, its image encoder's
    torchvision ResNet (fc removed) under ``img_encoder.model.``, beside the embedders and BERT."""
    state = {f"gloria.img_encoder.model.{key}": value for key, value in backbone_state.items() if not key.startswith("fc.")}
    state |= {
        "gloria.img_encoder.global_embedder.weight": torch.zeros(768, 512),
        "gloria.img_encoder.local_embedder.weight": torch.zeros(768, 256, 1, 1),
        "gloria.text_encoder.model.embeddings.word_embeddings.weight": torch.zeros(10, 768),
    }
    torch.save({"epoch": 3, "global_step": 900, "state_dict": state, "hyper_parameters": {"lr": 5e-5}}, path)


def mgca_checkpoint(path, image_state):
    """MGCA's checkpoint: the query image encoder under ``img_encoder_q.``, its backbone under
    ``model.``, beside the embedding heads, the BERT encoder and the prototypes."""
    state = {f"img_encoder_q.model.{key}": value for key, value in image_state.items() if not key.startswith("fc.")}
    state |= {
        "img_encoder_q.global_embed.head.0.weight": torch.zeros(2048, 512),
        "text_encoder_q.model.embeddings.word_embeddings.weight": torch.zeros(10, 768),
        "prototype_layer.weight": torch.zeros(500, 128),
    }
    torch.save({"epoch": 49, "state_dict": state, "hyper_parameters": {"img_encoder": "resnet_50"}}, path)


def test_a_gloria_checkpoint_gives_the_classifier_its_resnet(tmp_path):
    state = torchvision_file(tmp_path / "torchvision.pth", "resnet18")
    gloria_checkpoint(tmp_path / "gloria.ckpt", state)
    classifier = ImageClassifier(num_classes=2, pretrained_checkpoint=tmp_path / "gloria.ckpt", img_size=64)
    loaded = classifier.features.backbone.state_dict()
    assert set(loaded) == set(state) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    assert classifier.settings["image_encoder"] == {
        "backbone": "resnet18",
        "img_size": 64,
        "in_channels": 1,
        "vit_config": None,
        "imagenet_input": True,
    }
    assert classifier(torch.rand(2, 1, 64, 64)).shape == (2, 2)


def test_an_mgca_checkpoint_gives_the_unet_its_resnet(tmp_path):
    state = torchvision_file(tmp_path / "torchvision.pth", "resnet18", seed=1)
    mgca_checkpoint(tmp_path / "mgca.ckpt", state)
    unet = PretrainedUNet(pretrained_checkpoint=tmp_path / "mgca.ckpt", img_size=64, decoder_channels=(32, 16, 16, 8, 8))
    assert torch.equal(unet.encoder.backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert unet.settings["image_encoder"]["imagenet_input"] is True
    with pytest.raises(DataError, match="mgca.ckpt: holds resnet18 weights, but --backbone resnet50 was given"):
        PretrainedUNet(pretrained_checkpoint=tmp_path / "mgca.ckpt", backbone="resnet50")


def test_anything_else_is_refused_with_the_keys_it_holds(tmp_path):
    vit = {
        "img_encoder_q.model.cls_token": torch.zeros(1, 1, 768),
        "img_encoder_q.model.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16),
    }
    torch.save({"state_dict": vit}, tmp_path / "mgca_vit.ckpt")
    with pytest.raises(
        DataError,
        match=r"mgca_vit.ckpt: not a RECLF checkpoint, nor image-encoder weights .*its keys: cls_token, patch_embed.proj.weight",
    ):
        ImageClassifier(num_classes=2, pretrained_checkpoint=tmp_path / "mgca_vit.ckpt")
    with pytest.raises(ValueError, match="imagenet needs the backbone"):
        ImageClassifier(num_classes=2, pretrained_checkpoint="imagenet")


def test_imagenet_as_the_classifiers_checkpoint_is_the_packaged_lite0():
    classifier = ImageClassifier(num_classes=3, pretrained_checkpoint="imagenet", backbone="efficientnet-lite0", img_size=64)
    packaged = torch.load(imagenet_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(classifier.features.backbone._conv_stem.weight, packaged["_conv_stem.weight"])
    assert classifier.head.in_features == 1280
    assert classifier(torch.rand(2, 1, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet-lite0"])
def test_frozen_stages_keep_their_weights_and_statistics_while_the_rest_trains(backbone):
    encoder = ImageEncoder(backbone, embed_dim=16, img_size=64, imagenet_input=True, frozen_stages=3).train()
    stages = encoder.features.stage_modules()
    frozen, trained = stages[:3], stages[3:]
    statistics = {name: buffer.clone() for name, buffer in encoder.named_buffers() if "running_mean" in name}
    local, global_features = encoder(torch.rand(4, 1, 64, 64))
    (local.mean() + global_features.mean()).backward()
    for module in (module for stage in frozen for module in stage):
        assert not module.training
        assert all(parameter.grad is None and not parameter.requires_grad for parameter in module.parameters())
    for module in (module for stage in trained for module in stage):
        assert module.training
        assert any(parameter.grad is not None for parameter in module.parameters())
    changed = {name for name, buffer in encoder.named_buffers() if "running_mean" in name and not torch.equal(buffer, statistics[name])}
    frozen_names = {id(buffer) for stage in frozen for module in stage for buffer in module.buffers()}
    assert changed and all(id(dict(encoder.named_buffers())[name]) not in frozen_names for name in changed)
    assert "frozen_stages" not in encoder.settings  # it shapes training, not the network


def test_frozen_stages_beyond_the_backbone_are_refused():
    with pytest.raises(ValueError, match="frozen_stages 6: the resnet18 backbone has 5 stages"):
        ImageEncoder("resnet18", embed_dim=16, img_size=64, frozen_stages=6)
    with pytest.raises(ValueError, match="the vit backbone has 0 stages"):
        ImageEncoder("vit", embed_dim=16, img_size=32, frozen_stages=1, vit_config={"patch_size": 16, "hidden_size": 32, "mlp_dim": 64, "num_layers": 1, "num_heads": 2})
