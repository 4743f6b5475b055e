"""The baselines a pretrained model is compared with: the same network before pretraining.

Two starts, as checkpoints in the pretraining format, so that every downstream bundle reads a
baseline exactly as it reads the pretrained model (``--pretrained_checkpoint``):

- ``imagenet``: the image backbone with ImageNet weights (the start papers compare against), the
  language model with its own weights, projections and relation modules random;
- ``random``: the image encoder random, the language model with its own weights. A random
  network's batch-norm layers hold their initial statistics (mean 0, variance 1), far from what
  its activations are, so in eval mode every image gives nearly the same features (cosine about
  0.998 between images) and a linear probe on them scores below chance. The statistics are
  therefore estimated on the training images in one pass (``torch.optim.swa_utils.update_bn``);
  no weight changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.data import DataLoader, Dataset

from reclf_monai.data import chest_xray_transforms, load_datalist
from reclf_monai.networks.checkpoints import pretraining_settings, save_checkpoint
from reclf_monai.networks.imagenet_weights import IMAGENET
from reclf_monai.networks.reclf_model import RECLFModel

BASELINES = ("imagenet", "random")
logger = logging.getLogger("reclf.baselines")


def untrained_model(settings: Mapping[str, Any], baseline: str) -> RECLFModel:
    """The network `settings` describe (a pretraining checkpoint's), started as `baseline`."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {BASELINES}")
    return RECLFModel.from_settings(settings, image_weights=IMAGENET if baseline == "imagenet" else None, pretrained_text=True)


def estimate_batch_norm_statistics(
    model: RECLFModel, datalist: str | os.PathLike, batch_size: int = 64, num_workers: int = 0
) -> int:
    """Set the image encoder's batch-norm statistics to those of the training images of `datalist`
    (one pass, plain resize: the evaluation transforms); returns the number of images seen."""
    items = [{"image": item["image"]} for item in load_datalist(datalist, "training")]  # reports etc. do not collate
    transform = chest_xray_transforms("image", image_size=model.image_encoder.settings["img_size"])
    loader = DataLoader(Dataset(items, transform), batch_size=batch_size, num_workers=num_workers)
    logger.info("estimating the image encoder's batch-norm statistics on %d training images of %s", len(items), datalist)
    torch.optim.swa_utils.update_bn((batch["image"] for batch in loader), model.image_encoder)
    return len(items)


def write_baseline_checkpoint(
    pretrained_checkpoint: str | os.PathLike, baseline: str, output: str | os.PathLike, datalist: str | os.PathLike, seed: int = 0
) -> Path:
    """Write the `baseline` of the network stored in `pretrained_checkpoint` to `output` (the
    ``random`` one with batch-norm statistics estimated on `datalist`'s training images) and return
    its path. `seed` draws the random weights."""
    torch.manual_seed(seed)
    model = untrained_model(pretraining_settings(pretrained_checkpoint), baseline)
    if baseline == "random":
        estimate_batch_norm_statistics(model, datalist)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model.eval(), output)
    logger.info("%s baseline of %s written to %s", baseline, pretrained_checkpoint, output)
    return output
