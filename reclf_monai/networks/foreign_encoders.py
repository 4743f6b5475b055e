"""Image-encoder weights trained elsewhere, read into this project's backbones: the baselines papers
compare against, scored under the same protocol.

Recognised layouts (read from their code):

- torchvision's ResNet-18/34/50 files (``conv1.weight``, ``layer1.0.conv1.weight``, ..., ``fc.*``);
- EfficientNet-PyTorch's EfficientNet-Lite0 file (``_conv_stem.weight``, ``_blocks.N.*``, ``_fc.*``);
- GLoRIA's Lightning checkpoint: its ResNet under ``state_dict`` as ``gloria.img_encoder.model.*``
  (``gloria.models.vision_model.ImageEncoder.model``, a torchvision ResNet whose ``fc`` is removed);
- MGCA's checkpoint: its ResNet under ``state_dict`` as ``img_encoder_q.model.*``
  (``mgca.models.backbones.encoder.ImageEncoder.model``, also torchvision's).

All of them were trained on 3-channel ImageNet-normalised input, so the encoder that takes them is
built in ImageNet form (``imagenet_input``). Anything else is refused with the keys that were not
recognised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from reclf_monai.data.errors import DataError

# (what the file is, the prefix of its image backbone's keys) for checkpoints that hold more.
WRAPPED_LAYOUTS = (("GLoRIA checkpoint", "gloria.img_encoder.model."), ("MGCA checkpoint", "img_encoder_q.model."))
CLASSIFIER_PREFIXES = ("fc.", "_fc.")
# (bottleneck blocks, blocks in layer3) -> torchvision ResNet.
RESNET_SHAPES = {(False, 2): "resnet18", (False, 6): "resnet34", (True, 6): "resnet50"}
LITE0_LAST_BLOCK = 15
KNOWN = "torchvision ResNet-18/34/50, EfficientNet-Lite0 (EfficientNet-PyTorch layout), GLoRIA's or MGCA's ResNet checkpoint"


def backbone_weights(state: object, path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str, str]:
    """The image backbone's weights in a foreign file's contents `state`, without any classifier,
    with the backbone they fit and a description of the file; DataError naming `path` otherwise."""
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise DataError(path, f"expected a state_dict (a mapping of tensors), found {type(state).__name__}")
    description = "weight file"
    for name, prefix in WRAPPED_LAYOUTS:
        if any(str(key).startswith(prefix) for key in state):
            state, description = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}, name
            break
    state = {key: value for key, value in state.items() if not str(key).startswith(CLASSIFIER_PREFIXES)}
    return state, backbone_of(state, path), description


def backbone_of(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> str:
    """The backbone whose key layout `state` has; DataError naming `path` and the keys otherwise."""
    keys = set(state)
    if "_conv_stem.weight" in keys:
        blocks = {int(match[1]) for key in keys if (match := re.match(r"_blocks\.(\d+)\.", key))}
        if max(blocks, default=-1) == LITE0_LAST_BLOCK and not any("_se_" in key for key in keys):
            return "efficientnet-lite0"
        raise DataError(
            path,
            f"an EfficientNet with {len(blocks)} blocks{' and squeeze-excitation' if any('_se_' in key for key in keys) else ''}; the one read here is EfficientNet-Lite0 (16 blocks, none)",
        )
    if "conv1.weight" in keys and "layer4.0.conv1.weight" in keys:
        bottleneck = "layer1.0.conv3.weight" in keys
        layer3_blocks = len({key.split(".")[1] for key in keys if key.startswith("layer3.")})
        if (bottleneck, layer3_blocks) in RESNET_SHAPES:
            return RESNET_SHAPES[(bottleneck, layer3_blocks)]
        raise DataError(
            path, f"a ResNet with {layer3_blocks} {'bottleneck' if bottleneck else 'basic'} blocks in layer3: not ResNet-18/34/50"
        )
    sample = ", ".join(sorted(map(str, keys))[:8])
    raise DataError(
        path,
        f"not a RECLF checkpoint, nor image-encoder weights this project reads ({KNOWN}); its keys: {sample}{' ...' if len(keys) > 8 else ''}",
    )
