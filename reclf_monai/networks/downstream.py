"""Downstream networks on the pretrained image encoder: a linear classifier and a U-Net.

Both take a RECLF pretraining checkpoint (``pretrained_checkpoint``), image-encoder weights
trained elsewhere as a baseline (``imagenet``, torchvision's, GLoRIA's or MGCA's files; see
:mod:`foreign_encoders`) or, without either, explicit encoder settings for the randomly
initialised baseline. ``freeze_encoder`` (default) trains only
the new head: the encoder gets no gradients and stays in eval mode, so its batch-norm statistics
stay the pretrained ones as well (the linear-evaluation protocol of GLoRIA/MGCA); set it false to
fine-tune everything. ``settings`` is what the bundles' checkpoints carry.

The U-Net is MONAI's :class:`~monai.networks.nets.FlexibleUNet` with this project's encoders
registered as backbones (``reclf_resnet18``, ``reclf_efficientnet-lite0_imagenet``, ...): MONAI's
own backbones differ in shortcut type, bias, activation or squeeze-excitation, so they cannot load
our weights.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from monai.networks.blocks import BaseEncoder
from monai.networks.nets import FLEXUNET_BACKBONE, FlexibleUNet
from torch import nn

from reclf_monai.bundle_switches import optional_path, switch_on
from reclf_monai.networks.checkpoints import (
    image_encoder_settings,
    is_foreign_encoder,
    load_backbone_weights,
    load_image_encoder,
    pretrained_encoder_weights,
)
from reclf_monai.networks.efficientnet_lite import STAGE_CHANNELS
from reclf_monai.networks.image_encoder import CNNS, EFFICIENTNETS, RESNETS, EfficientNetFeatures, ResNetFeatures

UNET_BACKBONE_PREFIX = "reclf_"


IMAGENET_SUFFIX = "_imagenet"
# EfficientNet's static "same" padding is computed for this size; for the U-Net's inputs (sides a
# multiple of 32) every convolution pads the same as for any other such size.
UNET_PADDING_SIZE = 224


class UNetEncoderNames:
    """The FlexibleUNet backbone names of one family of this project's encoders: ``reclf_NAME`` and,
    in ImageNet form (:class:`~reclf_monai.networks.imagenet_weights.ImageNetInput` in front),
    ``reclf_NAME_imagenet``; FlexibleUNet passes its backbones only what is registered under a name."""

    family: tuple[str, ...] = ()
    channels: tuple[int, ...] = ()

    @classmethod
    def get_encoder_names(cls) -> list[str]:
        return [UNET_BACKBONE_PREFIX + name + suffix for suffix in ("", IMAGENET_SUFFIX) for name in cls.family]

    @classmethod
    def get_encoder_parameters(cls) -> list[dict]:
        return [
            {"model_name": name, "pretrained": False, "spatial_dims": 2, "in_channels": 1, "imagenet_input": name.endswith(IMAGENET_SUFFIX)}
            for name in cls.get_encoder_names()
        ]

    @classmethod
    def num_channels_per_output(cls) -> list[tuple[int, ...]]:
        return [cls.channels[cls.family.index(cls.backbone_of(name))] for name in cls.get_encoder_names()]

    @classmethod
    def num_outputs(cls) -> list[int]:
        return [5] * len(cls.get_encoder_names())

    @staticmethod
    def backbone_of(model_name: str) -> str:
        return model_name[len(UNET_BACKBONE_PREFIX) :].removesuffix(IMAGENET_SUFFIX)

    @staticmethod
    def check_arguments(model_name: str, pretrained: bool, spatial_dims: int) -> None:
        if spatial_dims != 2 or pretrained:
            raise ValueError(
                f"{model_name} is 2-D and takes its weights from a RECLF checkpoint (PretrainedUNet), "
                f"got spatial_dims={spatial_dims}, pretrained={pretrained}"
            )

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.stages(image)


class PretrainedResNetEncoder(UNetEncoderNames, ResNetFeatures, BaseEncoder):
    """This project's ResNet as a FlexibleUNet backbone: the outputs of its five stages."""

    family = RESNETS
    channels = ((64, 64, 128, 256, 512), (64, 64, 128, 256, 512), (64, 256, 512, 1024, 2048))

    def __init__(self, model_name: str, pretrained: bool = False, spatial_dims: int = 2, in_channels: int = 1, imagenet_input: bool = False):
        self.check_arguments(model_name, pretrained, spatial_dims)
        super().__init__(self.backbone_of(model_name), in_channels, imagenet_input=imagenet_input)


class PretrainedEfficientNetEncoder(UNetEncoderNames, EfficientNetFeatures, BaseEncoder):
    """This project's EfficientNet-Lite0 as a FlexibleUNet backbone: the outputs of its five stages."""

    family = EFFICIENTNETS
    channels = (STAGE_CHANNELS,)

    def __init__(self, model_name: str, pretrained: bool = False, spatial_dims: int = 2, in_channels: int = 1, imagenet_input: bool = False):
        self.check_arguments(model_name, pretrained, spatial_dims)
        super().__init__(in_channels, UNET_PADDING_SIZE, imagenet_input=imagenet_input)


FLEXUNET_BACKBONE.register_class(PretrainedResNetEncoder)
FLEXUNET_BACKBONE.register_class(PretrainedEfficientNetEncoder)


RANDOM_ENCODER_DEFAULTS = {"backbone": "resnet18", "img_size": 224, "in_channels": 1}
# What of the encoder's settings a downstream network depends on (its projections are not used).
DOWNSTREAM_ENCODER_SETTINGS = ("backbone", "img_size", "in_channels", "vit_config", "imagenet_input")


def _requested_encoder(pretrained_checkpoint: Optional[str | os.PathLike], **settings: Any) -> dict[str, Any]:
    """The settings given (not None); without a checkpoint, completed with the random defaults."""
    given = {name: value for name, value in settings.items() if value is not None}
    return given if pretrained_checkpoint is not None else {**RANDOM_ENCODER_DEFAULTS, **given}


class ImageClassifier(nn.Module):
    """Logits (B, num_classes) from a linear layer on the encoder's pooled features (2048-d for
    ResNet-50, 512-d for ResNet-18, the token mean for ViT), not on the joint-space projection.

    Args:
        num_classes: outputs; the bundle's loss decides multi-label (BCE) or multi-class (CE).
        pretrained_checkpoint: a RECLF pretraining checkpoint, foreign weights (``imagenet`` with
            `backbone`, or a torchvision/GLoRIA/MGCA file); None (or the word none) for a random
            encoder.
        freeze_encoder: train the linear head only (default) or fine-tune everything (a bool or a
            word such as false, as the bundle CLI gives it).
        backbone, img_size, in_channels, vit_config, imagenet_input: the random encoder's settings
            (default resnet18, 224 px, 1 channel, not in ImageNet form); a checkpoint stores its
            own, which these may only repeat.
    """

    def __init__(
        self,
        num_classes: int,
        pretrained_checkpoint: Optional[str | os.PathLike] = None,
        freeze_encoder: bool | str = True,
        backbone: Optional[str] = None,
        img_size: Optional[int] = None,
        in_channels: Optional[int] = None,
        vit_config: Optional[dict[str, Any]] = None,
        imagenet_input: Optional[bool] = None,
    ):
        super().__init__()
        pretrained_checkpoint = optional_path(pretrained_checkpoint, "pretrained_checkpoint")
        freeze_encoder = switch_on(freeze_encoder, "freeze_encoder")
        requested = _requested_encoder(
            pretrained_checkpoint,
            backbone=backbone,
            img_size=img_size,
            in_channels=in_channels,
            vit_config=vit_config,
            imagenet_input=imagenet_input,
        )
        encoder = load_image_encoder(pretrained_checkpoint, **requested)
        self.features = encoder.features
        self.head = nn.Linear(self.features.global_channels, num_classes)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            freeze(self.features)
        self.settings = {
            "num_classes": num_classes,
            "freeze_encoder": freeze_encoder,
            "image_encoder": {name: encoder.settings[name] for name in DOWNSTREAM_ENCODER_SETTINGS},
        }

    def train(self, mode: bool = True) -> "ImageClassifier":
        super().train(mode)
        if self.freeze_encoder:
            self.features.eval()
        return self

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image)[1])


class PretrainedUNet(FlexibleUNet):
    """MONAI FlexibleUNet on the pretrained ResNet: skip connections from all five stages.

    Args:
        out_channels: output channels (1 for a binary mask with a sigmoid).
        pretrained_checkpoint: a RECLF pretraining checkpoint or foreign weights, as for
            :class:`ImageClassifier` (convolutional encoders only: a ViT gives no feature
            pyramid); None (or the word none) for a random encoder.
        freeze_encoder: train the decoder only (default) or fine-tune everything (a bool or a word).
        backbone, img_size, in_channels, imagenet_input: the random encoder's settings (default
            resnet18, 224 px, 1 channel, not in ImageNet form); a checkpoint stores its own, which
            these may only repeat.
        decoder_channels: FlexibleUNet's decoder widths.
    """

    def __init__(
        self,
        out_channels: int = 1,
        pretrained_checkpoint: Optional[str | os.PathLike] = None,
        freeze_encoder: bool | str = True,
        backbone: Optional[str] = None,
        img_size: Optional[int] = None,
        in_channels: Optional[int] = None,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        imagenet_input: Optional[bool] = None,
    ):
        pretrained_checkpoint = optional_path(pretrained_checkpoint, "pretrained_checkpoint")
        freeze_encoder = switch_on(freeze_encoder, "freeze_encoder")
        requested = _requested_encoder(
            pretrained_checkpoint, backbone=backbone, img_size=img_size, in_channels=in_channels, imagenet_input=imagenet_input
        )
        stored = image_encoder_settings(pretrained_checkpoint, **requested)
        encoder_settings = {name: stored.get(name) for name in DOWNSTREAM_ENCODER_SETTINGS}
        encoder_settings["imagenet_input"] = bool(encoder_settings["imagenet_input"])
        if encoder_settings["backbone"] not in CNNS:
            raise ValueError(
                f"segmentation needs a convolutional encoder ({', '.join(CNNS)}); {encoder_settings['backbone']!r} "
                f"gives no feature pyramid{f' (from {pretrained_checkpoint})' if pretrained_checkpoint else ''}"
            )
        super().__init__(
            in_channels=encoder_settings["in_channels"],
            out_channels=out_channels,
            backbone=UNET_BACKBONE_PREFIX + encoder_settings["backbone"] + (IMAGENET_SUFFIX if encoder_settings["imagenet_input"] else ""),
            decoder_channels=tuple(decoder_channels),
            spatial_dims=2,
        )
        if pretrained_checkpoint is not None and is_foreign_encoder(pretrained_checkpoint):
            load_backbone_weights(self.encoder.backbone, pretrained_checkpoint, encoder_settings["backbone"])
        elif pretrained_checkpoint is not None:
            self.encoder.load_state_dict(pretrained_encoder_weights(pretrained_checkpoint, self.encoder, "features."))
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            freeze(self.encoder)
        self.settings = {
            "out_channels": out_channels,
            "decoder_channels": list(decoder_channels),
            "freeze_encoder": freeze_encoder,
            "image_encoder": encoder_settings,
        }

    def train(self, mode: bool = True) -> "PretrainedUNet":
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self


def freeze(module: nn.Module) -> None:
    """No gradients for `module`; pair with keeping it in eval mode (see the downstream networks),
    so batch-norm statistics stay the pretrained ones too."""
    module.requires_grad_(False)
    module.eval()


def trainable_parameters(network: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimizer should see: with a frozen encoder, the head or decoder only."""
    return [parameter for parameter in network.parameters() if parameter.requires_grad]
