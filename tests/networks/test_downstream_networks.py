"""The hand-off from pretraining: encoders, classifiers and U-Nets built from a RECLF checkpoint."""

import pytest
import torch
from tiny_models import tiny_one_layer_model

from reclf_monai.data.errors import DataError
from reclf_monai.networks import (
    ImageClassifier,
    ImageEncoder,
    PretrainedUNet,
    load_image_encoder,
    load_pretrained_weights,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny RECLF model (ResNet-18 at 64 px) with non-default weights, saved as reclf_pretrain does."""
    model = tiny_one_layer_model("reclf")
    with torch.no_grad():
        for parameter in model.image_encoder.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
        model.image_encoder.features.backbone.bn1.running_mean.add_(0.5)
    path = save_checkpoint(model, tmp_path_factory.mktemp("pretrain") / "model.pt")
    return model, path


def assert_same_tensors(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=0, msg=name)


def test_image_encoder_from_checkpoint_has_its_settings_and_weights(pretrained):
    model, path = pretrained
    encoder = load_image_encoder(path)
    assert encoder.settings == model.image_encoder.settings
    assert_same_tensors(encoder.state_dict(), model.image_encoder.state_dict())


def test_a_setting_that_contradicts_the_checkpoint_is_an_error(pretrained):
    _, path = pretrained
    with pytest.raises(DataError, match=r"model\.pt.*img_size: checkpoint 64, requested 128"):
        load_image_encoder(path, img_size=128)
    assert load_image_encoder(path, img_size=64).settings["img_size"] == 64


def test_a_file_that_is_not_a_reclf_checkpoint_is_named(tmp_path):
    plain = tmp_path / "weights.pt"
    torch.save(ImageEncoder("resnet18", embed_dim=16).state_dict(), plain)
    with pytest.raises(DataError, match=r"weights\.pt: not a RECLF checkpoint"):
        load_image_encoder(plain)
    downstream = tmp_path / "classifier.pt"
    classifier = ImageClassifier(3, backbone="resnet18", img_size=64)
    torch.save({"model": classifier.state_dict(), "network_settings": classifier.settings}, downstream)
    with pytest.raises(DataError, match=r"classifier\.pt: not a RECLF pretraining checkpoint"):
        load_image_encoder(downstream)
    with pytest.raises(DataError, match="file not found"):
        PretrainedUNet(pretrained_checkpoint=tmp_path / "missing.pt")



def test_encoder_weights_that_do_not_fit_are_listed_with_the_file(pretrained, tmp_path):
    """A checkpoint whose settings fit but whose image-encoder weights were altered (a key dropped,
    another reshaped): refused with every kind of mismatch listed, not a load_state_dict crash."""
    _, path = pretrained
    checkpoint = torch.load(path, weights_only=True)
    weights = checkpoint["model"]
    del weights["image_encoder.features.backbone.layer4.1.bn2.bias"]
    weights["image_encoder.features.backbone.conv1.weight"] = weights["image_encoder.features.backbone.conv1.weight"][:, :, :3]
    altered = tmp_path / "altered.pt"
    torch.save(checkpoint, altered)
    expected = r"altered\.pt: image-encoder weights do not fit the \w+: missing keys \(1\): \S*layer4\.1\.bn2\.bias; wrong shapes \(1\): \S*conv1\.weight$"
    with pytest.raises(DataError, match=expected):
        PretrainedUNet(pretrained_checkpoint=altered)

def test_unet_skip_connections_come_from_every_stage_of_the_pretrained_resnet(pretrained):
    model, path = pretrained
    unet = PretrainedUNet(out_channels=1, pretrained_checkpoint=path)
    backbone = model.image_encoder.features.backbone.state_dict()
    assert_same_tensors({k[len("backbone."):]: v for k, v in unet.encoder.state_dict().items()}, backbone)
    image = torch.randn(2, 1, 64, 64)
    stages = unet.encoder(image)
    assert [tuple(stage.shape[-2:]) for stage in stages] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert [stage.shape[1] for stage in stages] == [64, 64, 128, 256, 512]
    model.image_encoder.eval()
    unet.eval()
    local, pooled = model.image_encoder.features(image)
    torch.testing.assert_close(stages[3], local)
    torch.testing.assert_close(stages[4].mean(dim=(2, 3)), pooled)
    assert unet(image).shape == (2, 1, 64, 64)
    assert unet.settings["image_encoder"] == {"backbone": "resnet18", "img_size": 64, "in_channels": 1, "vit_config": None, "imagenet_input": False}


def test_unet_refuses_a_vit_encoder(tmp_path):
    model = tiny_one_layer_model()
    model.settings["image_encoder"]["backbone"] = "vit"  # a checkpoint whose encoder is a ViT
    path = save_checkpoint(model, tmp_path / "vit.pt")
    with pytest.raises(ValueError, match=r"convolutional encoder.*'vit'.*vit\.pt"):
        PretrainedUNet(pretrained_checkpoint=path)


@pytest.mark.parametrize("network", ["classifier", "unet"])
def test_a_frozen_encoder_is_unchanged_by_training_and_the_head_learns(pretrained, network):
    _, path = pretrained
    torch.manual_seed(0)
    if network == "classifier":
        net, encoder, target = ImageClassifier(2, pretrained_checkpoint=path), "features", torch.tensor([0, 1, 1, 0])
        loss_function = torch.nn.CrossEntropyLoss()
    else:
        net, encoder, target = PretrainedUNet(pretrained_checkpoint=path), "encoder", (torch.rand(4, 1, 64, 64) > 0.5).float()
        loss_function = torch.nn.BCEWithLogitsLoss()
    encoder_before = {k: v.clone() for k, v in getattr(net, encoder).state_dict().items()}
    head_before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith(encoder)}
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()
    for _ in range(2):
        optimizer.zero_grad()
        loss_function(net(torch.randn(4, 1, 64, 64)), target).backward()
        optimizer.step()
    assert_same_tensors(getattr(net, encoder).state_dict(), encoder_before)  # batch-norm statistics included
    assert any(not torch.equal(v, head_before[k]) for k, v in net.state_dict().items() if k in head_before)


def test_fine_tuning_changes_the_encoder(pretrained):
    _, path = pretrained
    net = ImageClassifier(2, pretrained_checkpoint=path, freeze_encoder=False)
    before = net.features.backbone.conv1.weight.clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    torch.nn.CrossEntropyLoss()(net(torch.randn(4, 1, 64, 64)), torch.tensor([0, 1, 1, 0])).backward()
    optimizer.step()
    assert not torch.equal(net.features.backbone.conv1.weight, before)


def test_classifier_checkpoint_round_trip_checks_its_settings(pretrained, tmp_path):
    _, path = pretrained
    classifier = ImageClassifier(5, pretrained_checkpoint=path)
    saved = tmp_path / "classifier.pt"
    torch.save({"model": classifier.state_dict(), "network_settings": classifier.settings}, saved)
    rebuilt = load_pretrained_weights(ImageClassifier(5, backbone="resnet18", img_size=64, freeze_encoder=False), saved)
    assert_same_tensors(rebuilt.state_dict(), classifier.state_dict())
    with pytest.raises(DataError, match="num_classes: checkpoint 5, network 3"):
        load_pretrained_weights(ImageClassifier(3, backbone="resnet18", img_size=64), saved)


def test_random_baseline_needs_no_checkpoint():
    unet = PretrainedUNet(backbone="resnet34", img_size=96)
    assert unet.settings["image_encoder"] == {"backbone": "resnet34", "img_size": 96, "in_channels": 1, "vit_config": None, "imagenet_input": False}
    classifier = ImageClassifier(4)
    assert classifier.settings["image_encoder"]["backbone"] == "resnet18"
    assert classifier(torch.randn(1, 1, 64, 64)).shape == (1, 4)
