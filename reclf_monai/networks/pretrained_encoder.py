"""The hand-off from pretraining: the image encoder (or the whole model's settings) of a RECLF
checkpoint, for downstream networks.

Every downstream bundle builds its image encoder here, from a pretraining checkpoint
(``model.pt`` or ``checkpoint_epoch=E.pt`` of ``reclf_pretrain``) with the settings stored in it,
or randomly initialised from explicit settings: the baseline every downstream table compares with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import nn

from reclf_monai.data.errors import DataError
from reclf_monai.networks.checkpoint_settings import SETTINGS_KEY, WEIGHTS_KEY, check_weights_fit, read_checkpoint
from reclf_monai.networks.image_encoder import ImageEncoder

ENCODER_PREFIX = "image_encoder."

logger = logging.getLogger("reclf.checkpoint")


def _pretraining_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    checkpoint = read_checkpoint(path)
    settings = checkpoint[SETTINGS_KEY]
    if "aggregation" not in settings or not isinstance(settings.get("image_encoder"), Mapping):
        raise DataError(
            path,
            "not a RECLF pretraining checkpoint: its settings describe no image-report model (downstream "
            "bundles start from the model.pt or checkpoint_epoch=E.pt that reclf_pretrain writes)",
        )
    return checkpoint


def pretraining_settings(pretrained_checkpoint: Optional[str | os.PathLike]) -> dict[str, Any]:
    """The whole image-report model's settings stored in a RECLF pretraining checkpoint, for
    ``RECLFModel.from_settings``; DataError naming the file for any other file.

    Bundles that use the whole model (retrieval, grounding) take its architecture from here, also
    for the untrained baseline, so that both sides of a comparison are the same network.
    """
    if pretrained_checkpoint is None:
        raise ValueError(
            "the image-report model is built from a RECLF pretraining checkpoint's settings: give its path "
            "(reclf_pretrain's model.pt or checkpoint_epoch=E.pt); for the untrained baseline give it as well, "
            "with weights switched off (the bundles' --load_pretrain false)"
        )
    return dict(_pretraining_checkpoint(pretrained_checkpoint)[SETTINGS_KEY])


def image_encoder_settings(
    pretrained_checkpoint: Optional[str | os.PathLike] = None, **settings: Any
) -> dict[str, Any]:
    """:class:`ImageEncoder` settings: those stored in `pretrained_checkpoint`, else `settings`.

    With a checkpoint, a setting given as well must agree with the stored one (DataError naming
    the file and the setting otherwise): a downstream run never quietly uses another size.
    """
    if pretrained_checkpoint is None:
        return dict(settings)
    stored = dict(_pretraining_checkpoint(pretrained_checkpoint)[SETTINGS_KEY]["image_encoder"])
    contradictions = [f"{name}: checkpoint {stored.get(name)!r}, requested {value!r}" for name, value in settings.items() if stored.get(name) != value]
    if contradictions:
        raise DataError(pretrained_checkpoint, "settings contradict the pretraining checkpoint: " + "; ".join(contradictions))
    return stored


def load_image_encoder(pretrained_checkpoint: Optional[str | os.PathLike] = None, **settings: Any) -> ImageEncoder:
    """The pretrained :class:`ImageEncoder` of a RECLF checkpoint, or a random one (no checkpoint).

    `settings` (backbone, img_size, embed_dim, ...) build the random encoder; with a checkpoint
    they may only repeat what it stores.
    """
    encoder = ImageEncoder(**image_encoder_settings(pretrained_checkpoint, **settings))
    if pretrained_checkpoint is not None:
        encoder.load_state_dict(pretrained_encoder_weights(pretrained_checkpoint, encoder, ""))
        logger.info("image encoder from %s (%s at %s px)", pretrained_checkpoint, encoder.settings["backbone"], encoder.settings["img_size"])
    return encoder


def pretrained_encoder_weights(path: str | os.PathLike, target: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """The checkpoint's image-encoder weights under `prefix` (``features.backbone.`` for the bare
    backbone), renamed to fit `target`; DataError naming the file unless every key fits."""
    weights = _pretraining_checkpoint(path)[WEIGHTS_KEY]
    source = ENCODER_PREFIX + prefix
    state = {name[len(source) :]: tensor for name, tensor in weights.items() if name.startswith(source)}
    check_weights_fit(target, state, path, "image-encoder weights")
    return state


def freeze(module: nn.Module) -> None:
    """No gradients for `module`; pair with keeping it in eval mode (see the downstream networks),
    so batch-norm statistics stay the pretrained ones too."""
    module.requires_grad_(False)
    module.eval()
