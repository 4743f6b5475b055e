"""The untrained baselines: the pretrained network's architecture before pretraining, as checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bundle_testing import write_tiny_pretraining_checkpoint
from PIL import Image

from reclf_monai.data import chest_xray_transforms
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder, pretraining_settings
from reclf_monai.networks.untrained_baselines import untrained_model, write_baseline_checkpoint

IMAGE_SIZE = 64


@pytest.fixture
def training_images(tmp_path):
    """A datalist of 12 training images of different brightness patterns (and no other split)."""
    rng = np.random.default_rng(0)
    items = []
    for index in range(12):
        pixels = (rng.random((IMAGE_SIZE, IMAGE_SIZE)) * 255 * (0.3 + index / 20)).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"image{index}.png")
        items.append({"image": f"image{index}.png"})
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": items}))
    return datalist, [tmp_path / item["image"] for item in items]


def image_batch(paths):
    transform = chest_xray_transforms("image", image_size=IMAGE_SIZE)
    return torch.stack([transform({"image": str(path)})["image"] for path in paths])


def mean_pairwise_cosine(features: torch.Tensor) -> float:
    similarity = F.normalize(features, dim=-1) @ F.normalize(features, dim=-1).T
    return similarity[~torch.eye(len(features), dtype=torch.bool)].mean().item()


def test_the_random_baseline_holds_the_training_images_batch_norm_statistics(tmp_path, training_images):
    datalist, paths = training_images
    source = write_tiny_pretraining_checkpoint(tmp_path / "model.pt", image_size=IMAGE_SIZE, seed=1)
    baseline = RECLFModel.from_checkpoint(write_baseline_checkpoint(source, "random", tmp_path / "random.pt", datalist))
    backbone = baseline.image_encoder.features.backbone
    with torch.no_grad():
        stem = backbone.conv1(image_batch(paths))
    # the first batch norm's statistics are those of its input over the training images
    torch.testing.assert_close(backbone.bn1.running_mean, stem.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(backbone.bn1.running_var, stem.var((0, 2, 3)), rtol=1e-3, atol=1e-5)

    # without them the untrained network sees every image alike; with them it tells them apart
    torch.manual_seed(0)
    unestimated = untrained_model(pretraining_settings(source), "random").eval()
    unestimated.load_state_dict({name: value for name, value in baseline.state_dict().items() if "running_" not in name}, strict=False)
    images = image_batch(paths[:6])
    with torch.no_grad():
        before = unestimated.image_encoder.features(images)[1]
        after = baseline.image_encoder.features(images)[1]
    assert mean_pairwise_cosine(before) > 0.99
    assert mean_pairwise_cosine(after) < mean_pairwise_cosine(before) - 0.05


def test_the_imagenet_baseline_starts_where_pretraining_starts(tmp_path, training_images):
    datalist, _ = training_images
    source = write_tiny_pretraining_checkpoint(tmp_path / "model.pt", image_size=IMAGE_SIZE, seed=1, backbone="efficientnet-lite0")
    baseline = RECLFModel.from_checkpoint(write_baseline_checkpoint(source, "imagenet", tmp_path / "imagenet.pt", datalist))
    assert baseline.image_encoder.settings["imagenet_input"] is True
    imagenet = ImageEncoder("efficientnet-lite0", img_size=IMAGE_SIZE, image_weights="imagenet").features.backbone.state_dict()
    for name, value in baseline.image_encoder.features.backbone.state_dict().items():
        torch.testing.assert_close(value, imagenet[name], rtol=0, atol=0, msg=name)
    language_model = TextEncoder(embed_dim=32, max_length=48).state_dict()
    own = baseline.text_encoder.state_dict()
    bert_weights = [name for name in language_model if "projection" not in name]
    assert len(bert_weights) > 50
    for name in bert_weights:
        torch.testing.assert_close(own[name], language_model[name], rtol=0, atol=0, msg=name)
    pretrained = RECLFModel.from_checkpoint(source).image_encoder.features.backbone.state_dict()
    assert not torch.equal(pretrained["_conv_stem.weight"], imagenet["_conv_stem.weight"])


def test_an_unknown_baseline_is_refused(tmp_path):
    source = write_tiny_pretraining_checkpoint(tmp_path / "model.pt", image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match="unknown baseline 'imagenet21k'"):
        untrained_model(pretraining_settings(source), "imagenet21k")
