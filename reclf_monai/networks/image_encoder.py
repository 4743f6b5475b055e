"""Image encoder: a MONAI 2-D backbone giving projected patch features and a global vector."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

import torch
from monai.networks import nets
from torch import nn

from reclf_monai.bundle_switches import optional_path, switch_on
from reclf_monai.networks.efficientnet_lite import (
    HEAD_CHANNELS,
    LITE_MEAN,
    LITE_STD,
    STAGE_CHANNELS,
    STAGE_ENDS,
    lite0_backbone,
    lite0_head,
    lite0_stages,
)
from reclf_monai.networks.imagenet_weights import TORCHVISION_MEAN, TORCHVISION_STD, ImageNetInput

RESNETS = ("resnet18", "resnet34", "resnet50")
EFFICIENTNETS = ("efficientnet-lite0",)
CNNS = RESNETS + EFFICIENTNETS  # the backbones with a feature pyramid (U-Net skip connections)
BACKBONES = CNNS + ("vit",)
LOCAL_LAYERS = ("layer3", "layer4")


class ResNetFeatures(nn.Module):
    """MONAI 2-D ResNet: (patch feature map of `local_layer`, average-pooled layer4 vector).

    The stem uses stride 2 (`conv1_t_stride=2`; MONAI's default is 1) so the network downsamples
    like the standard ResNet: layer3 is 1/16 of the input (GLoRIA's local map: 19x19 at 299 px,
    14x14 at 224 px) and layer4 1/32. GLoRIA matches words against layer3; layer4 is coarser
    but semantically stronger.

    Weights and activations are kept channels-last (NHWC): the layout oneDNN and cuDNN convolve
    fastest (ResNet-18 forward + backward at 128 px about 15 % faster on our 2-core CPU); values
    are the same as with the default layout.

    `imagenet_input` builds torchvision's layout: a 3-channel stem behind :class:`ImageNetInput`
    and no bias in the downsampling shortcuts (a batch norm follows them, so the bias did nothing).
    """

    def __init__(self, name: str, in_channels: int, local_layer: str = "layer3", imagenet_input: bool = False):
        super().__init__()
        if local_layer not in LOCAL_LAYERS:
            raise ValueError(f"unknown local_layer {local_layer!r}; choose one of {LOCAL_LAYERS}")
        self.input_adapter = ImageNetInput(TORCHVISION_MEAN, TORCHVISION_STD) if imagenet_input else nn.Identity()
        self.backbone = getattr(nets, name)(
            spatial_dims=2,
            n_input_channels=3 if imagenet_input else in_channels,
            feed_forward=False,
            conv1_t_stride=2,
            bias_downsample=not imagenet_input,
        )
        self.backbone.to(memory_format=torch.channels_last)
        expansion = type(self.backbone.layer1[0]).expansion
        self.local_layer = local_layer
        self.local_channels = (256 if local_layer == "layer3" else 512) * expansion
        self.global_channels = 512 * expansion

    def stages(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage, each half the size of the one before: stem (1/2), layer1
        (1/4), layer2 (1/8), layer3 (1/16), layer4 (1/32); a U-Net decoder's skip connections."""
        net = self.backbone
        image = self.input_adapter(image)
        stem = net.act(net.bn1(net.conv1(image.contiguous(memory_format=torch.channels_last))))
        layer1 = net.layer1(net.maxpool(stem))
        layer2 = net.layer2(layer1)
        layer3 = net.layer3(layer2)
        return [stem, layer1, layer2, layer3, net.layer4(layer3)]

    def stage_modules(self) -> list[list[nn.Module]]:
        """The modules of each stage of :meth:`stages`, in order (the stem with the first)."""
        net = self.backbone
        return [[net.conv1, net.bn1], [net.layer1], [net.layer2], [net.layer3], [net.layer4]]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stages = self.stages(image)
        layer3, layer4 = stages[3], stages[4]
        local = layer3 if self.local_layer == "layer3" else layer4
        return local, layer4.mean(dim=(2, 3))


class EfficientNetFeatures(nn.Module):
    """EfficientNet-Lite0 (:mod:`efficientnet_lite`): (1/16 stage map, pooled 1280-channel head).

    The 1/16 map (112 channels) plays ResNet layer3's part in local matching; ``stages`` gives the
    U-Net its five skip connections. `imagenet_input` puts :class:`ImageNetInput` (with Lite's
    (x - 127) / 128 scaling) in front of a 3-channel stem; without it the stem takes `in_channels`.
    """

    def __init__(self, in_channels: int, img_size: int, local_layer: str = "layer3", imagenet_input: bool = False):
        super().__init__()
        if local_layer != "layer3":
            raise ValueError(f"{EFFICIENTNETS[0]} matches words against its 1/16 map only (local_layer 'layer3'), got {local_layer!r}")
        self.input_adapter = ImageNetInput(LITE_MEAN, LITE_STD) if imagenet_input else nn.Identity()
        self.backbone = lite0_backbone(3 if imagenet_input else in_channels, img_size)
        self.local_channels = STAGE_CHANNELS[3]
        self.global_channels = HEAD_CHANNELS

    def stages(self, image: torch.Tensor) -> list[torch.Tensor]:
        return lite0_stages(self.backbone, self.input_adapter(image))

    def stage_modules(self) -> list[list[nn.Module]]:
        """The modules of each stage of :meth:`stages`, in order (the stem with the first)."""
        net = self.backbone
        blocks = [block for stage in net._blocks for block in stage]
        starts = [0, *(end + 1 for end in STAGE_ENDS[:-1])]
        stages = [blocks[start : end + 1] for start, end in zip(starts, STAGE_ENDS)]
        return [[net._conv_stem, net._bn0, *stages[0]], *stages[1:]]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stages = self.stages(image)
        return stages[3], lite0_head(self.backbone, stages[4]).mean(dim=(2, 3))


class ViTFeatures(nn.Module):
    """MONAI 2-D ViT: (patch tokens as a map (B, C, H/p, W/p), mean of the tokens).

    `vit_config` goes to ``monai.networks.nets.ViT`` (patch_size, hidden_size, mlp_dim,
    num_layers, num_heads, dropout_rate, ...); the input size is fixed at `img_size`.
    """

    def __init__(self, in_channels: int, img_size: int, vit_config: Optional[Mapping[str, Any]] = None):
        super().__init__()
        config = {"patch_size": 16, **(vit_config or {})}
        self.backbone = nets.ViT(
            in_channels=in_channels, img_size=img_size, spatial_dims=2, classification=False, **config
        )
        self.grid = img_size // config["patch_size"]
        self.local_channels = self.global_channels = self.backbone.norm.normalized_shape[0]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.backbone(image)[0]
        local = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], self.grid, self.grid)
        return local, tokens.mean(dim=1)


class ImageEncoder(nn.Module):
    """Patch features (B, D, h, w) and a global vector (B, D) in the joint space.

    Args:
        backbone: `resnet18`, `resnet34`, `resnet50` (MONAI ResNet), `efficientnet-lite0` (MONAI
            EfficientNet) or `vit` (MONAI ViT).
        in_channels: channels of the input image: 1 for grey-scale radiographs.
        embed_dim: D, the joint dimension. Patch features use a 1x1 convolution (as GLoRIA),
            the global vector a linear layer.
        local_layer: ResNet map used for patches, `layer3` (default, GLoRIA) or `layer4`.
        img_size: input side length (ViT only: its position embeddings fix it).
        vit_config: extra ``monai.networks.nets.ViT`` arguments (ViT only).
        image_weights: how the backbone starts: None (or the word none) for random weights,
            ``imagenet`` for ImageNet's (torchvision's ResNet files, through torch.hub's cache; the
            EfficientNet-Lite0 file of its package), or a path to such a file (torchvision's
            layout for ResNets, EfficientNet-PyTorch's for Lite0; the classifier is dropped).
            Any of them implies `imagenet_input`.
        frozen_stages: how many of the CNN's five stages (stem included in the first) keep their
            initial weights and batch-norm statistics in training (eval mode, no gradients). Why:
            an ImageNet start's low-level filters already suit radiographs, and the backward pass
            through the high-resolution stages is most of an image step's cost (EfficientNet-Lite0
            at 128 px, batch 32: forward + backward 1.3 s with none frozen, 0.65 s with three, on a
            2-core AMD EPYC). Like `image_weights` it shapes training, not the network, so it is
            no setting: a checkpoint's encoder is rebuilt unfrozen.
        imagenet_input: the backbone in ImageNet form: grey input repeated to RGB and normalised
            with the mean/std its weights were trained with, inside the network, so every bundle
            that rebuilds it from its settings feeds it the same way.
        feature_norm: batch-normalise the backbone's local map and pooled vector before the
            projections. Why: a ResNet's outputs are non-negative after its last ReLU, so the
            embeddings of a backbone trained from scratch start nearly parallel (mean cosine
            between different images about 0.93 in training mode at initialisation), and a
            contrastive loss can barely tell images apart until they spread; centring the
            features across the batch removes that shared component from the first step.

    ``settings`` holds the arguments that shape the encoder (all but `image_weights` and
    `frozen_stages`, which only initialise and train it), so checkpoints can carry them and rebuild
    the same encoder.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 1,
        embed_dim: int = 768,
        local_layer: str = "layer3",
        img_size: int = 224,
        vit_config: Optional[Mapping[str, Any]] = None,
        image_weights: Optional[str | os.PathLike] = None,
        feature_norm: bool = False,
        imagenet_input: bool = False,
        frozen_stages: int = 0,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
        image_weights = optional_path(image_weights, "image_weights")
        # the bundle CLI hands over words ("false" is a true string)
        feature_norm = switch_on(feature_norm, "feature_norm")
        imagenet_input = switch_on(imagenet_input, "imagenet_input") or image_weights is not None
        if imagenet_input and backbone not in CNNS:
            raise ValueError(f"ImageNet weights and input exist for {', '.join(CNNS)}, not {backbone!r}")
        self.settings = {
            "backbone": backbone,
            "in_channels": in_channels,
            "embed_dim": embed_dim,
            "local_layer": local_layer,
            "img_size": img_size,
            "vit_config": dict(vit_config) if vit_config else None,
            "feature_norm": feature_norm,
            "imagenet_input": imagenet_input,
        }
        if backbone == "vit":
            self.features: nn.Module = ViTFeatures(in_channels, img_size, vit_config)
        elif backbone in EFFICIENTNETS:
            self.features = EfficientNetFeatures(in_channels, img_size, local_layer, imagenet_input)
        else:
            self.features = ResNetFeatures(backbone, in_channels, local_layer, imagenet_input)
        if image_weights is not None:
            from reclf_monai.networks.checkpoints import load_backbone_weights  # it builds ImageEncoders: no cycle

            load_backbone_weights(self.features.backbone, image_weights, backbone)
        self.frozen_modules: list[nn.Module] = []
        self.freeze_stages(int(frozen_stages))
        self.embed_dim = embed_dim
        self.local_norm = nn.BatchNorm2d(self.features.local_channels) if feature_norm else nn.Identity()
        self.global_norm = nn.BatchNorm1d(self.features.global_channels) if feature_norm else nn.Identity()
        self.local_projection = nn.Conv2d(self.features.local_channels, embed_dim, kernel_size=1, bias=False)
        self.global_projection = nn.Linear(self.features.global_channels, embed_dim)

    def freeze_stages(self, count: int) -> None:
        """Freeze the stem and the first `count` CNN stages (weights and batch-norm statistics):
        the `frozen_stages` argument, also for rebuilding a training run's trainable parameters."""
        if count == 0:
            return
        stages = self.features.stage_modules() if hasattr(self.features, "stage_modules") else []
        if not 0 < count <= len(stages):
            raise ValueError(f"frozen_stages {count}: the {self.settings['backbone']} backbone has {len(stages)} stages to freeze")
        self.frozen_modules = [module for stage in stages[:count] for module in stage]
        for module in self.frozen_modules:
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> "ImageEncoder":
        """Like ``nn.Module.train``, but frozen stages stay in eval mode (their batch-norm statistics too)."""
        super().train(mode)
        for module in self.frozen_modules:
            module.eval()
        return self

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local, global_features = self.features(image)
        return self.local_projection(self.local_norm(local)), self.global_projection(self.global_norm(global_features))
