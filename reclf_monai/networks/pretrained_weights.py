"""One switch between a pretraining checkpoint's weights and the untrained baseline.

Bundles that evaluate the whole pretrained model (zero-shot classification) build its network
from the checkpoint's settings and then either load the checkpoint's weights or keep the random
initialisation: the baseline every table compares with. Asking for weights without naming a
checkpoint is an error, so an evaluation never scores an untrained network by accident.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

from torch import nn

from reclf_monai.networks.checkpoint_settings import describe_settings, load_pretrained_weights, unwrap

logger = logging.getLogger("reclf.checkpoint")


def pretrained_or_untrained(network: nn.Module, pretrained_checkpoint: Optional[str | os.PathLike], load_pretrain: bool) -> nn.Module:
    """`network` with the weights of `pretrained_checkpoint` (settings checked, see
    :func:`load_pretrained_weights`) when `load_pretrain`, else `network` as initialised, logged as
    the untrained baseline."""
    if load_pretrain:
        if pretrained_checkpoint is None:
            raise ValueError(
                "load_pretrain is true but no pretrained_checkpoint was given: pass --pretrained_checkpoint PATH "
                "(reclf_pretrain's model.pt or checkpoint_epoch=E.pt), or --load_pretrain false for the untrained baseline"
            )
        return load_pretrained_weights(network, pretrained_checkpoint)
    source = f"the settings of {pretrained_checkpoint}" if pretrained_checkpoint is not None else "the explicit settings (no checkpoint)"
    logger.warning("untrained baseline: random weights, network from %s (%s)", source, describe_settings(unwrap(network).settings))
    return network
