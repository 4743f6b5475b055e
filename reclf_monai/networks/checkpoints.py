"""Checkpoints: writing them, reading them, and loading their weights into the networks they were
written for. Every other module goes through this one.

Every checkpoint the bundles write holds ``{"model": state_dict, "network_settings": settings,
...}`` where ``settings`` is the network's ``settings``. Evaluation, inference and downstream
bundles rebuild the network from the file alone, and a checkpoint never loads into a network it
was not written for: ``mean``, ``lse`` and ``fixed_importance`` share parameter names and a ResNet
takes any image size, so matching weights alone would not notice. Sections:

- settings saved beside the weights and compared on load (:class:`NetworkSettings`);
- reading files with errors that name them, and checking that weights fit;
- the hand-off from pretraining: the image encoder (or the whole model's settings) of a RECLF
  pretraining checkpoint, for downstream networks, or the same network untrained (the baseline);
- backbone weight files and segmentation checkpoints.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import nn

from reclf_monai.bundle_switches import optional_path, switch_on
from reclf_monai.data.errors import DataError
from reclf_monai.networks.efficientnet_lite import from_flat_block_names
from reclf_monai.networks.foreign_encoders import backbone_weights
from reclf_monai.networks.image_encoder import ImageEncoder
from reclf_monai.networks.imagenet_weights import IMAGENET, read_image_weights

SETTINGS_KEY = "network_settings"
WEIGHTS_KEY = "model"
# Settings of earlier versions that no longer exist; checkpoints holding them still load.
# `checkpoint_chunks`: the local scorer now always recomputes its blocks in the backward pass.
RETIRED_SETTINGS = frozenset({"checkpoint_chunks"})
# Settings added since checkpoints were first written, with the value every earlier checkpoint
# (which lacks them) was trained with: settings without them compare as if they held that value.
ADDED_SETTINGS = {
    "score_importance": False,
    "image_encoder.feature_norm": False,
    "image_encoder.imagenet_input": False,
    "text_encoder.last_n_layers": 1,
    "text_encoder.word_pieces": "tokens",
    "text_encoder.sep_as_word": False,
}
# Settings that change neither the weights nor the outputs: how much memory the local scorer may
# use, which layers train, and where the text encoder's files lie on this machine.
NOT_COMPARED = RETIRED_SETTINGS | {
    "memory_budget_mb", "text_encoder.freeze_layers", "text_encoder.model_name_or_path", "freeze_encoder"
}

logger = logging.getLogger("reclf.checkpoint")
ENCODER_PREFIX = "image_encoder."


def unwrap(network: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel/DataParallel wrapper (or the model itself)."""
    return getattr(network, "module", network)


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and key in ("image_encoder", "text_encoder"):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``name: checkpoint X, network Y`` for every compared setting that differs."""
    saved_flat, current_flat = ({**ADDED_SETTINGS, **_flatten(settings)} for settings in (saved, current))
    names = sorted((set(saved_flat) | set(current_flat)) - NOT_COMPARED)
    missing = "(absent)"
    return [
        f"{name}: checkpoint {saved_flat.get(name, missing)!r}, network {current_flat.get(name, missing)!r}"
        for name in names
        if saved_flat.get(name, missing) != current_flat.get(name, missing)
    ]


class NetworkSettings:
    """A network's settings as an object ignite's ``Checkpoint`` can save and load.

    Put it in a ``CheckpointSaver``'s ``save_dict`` (under ``network_settings``) to store the
    settings with the weights, and in a ``CheckpointLoader``'s ``load_dict`` to refuse a
    checkpoint written for another network (`source` names the file in the error).
    """

    def __init__(self, network: nn.Module, source: str | os.PathLike | None = None):
        self.network = network
        self.source = source

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(unwrap(self.network).settings)

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        differences = settings_differences(saved, unwrap(self.network).settings)
        if differences:
            raise DataError(self.source, "checkpoint was written for another network: " + "; ".join(differences))


def save_checkpoint(network: nn.Module, path: str | os.PathLike) -> str | os.PathLike:
    """Write `network` (or its DDP wrapper) to `path` in the bundles' checkpoint format and return
    `path`; for code that trains outside a bundle (whose ``CheckpointSaver`` writes the same two
    entries)."""
    torch.save({WEIGHTS_KEY: unwrap(network).state_dict(), SETTINGS_KEY: NetworkSettings(network).state_dict()}, path)
    return path


def read_torch_file(path: str | os.PathLike, kind: str = "checkpoint") -> Any:
    """``torch.load`` (tensors and plain data only) with a DataError naming the file and `kind`."""
    if not os.path.isfile(path):
        raise DataError(path, f"{kind} file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise DataError(path, f"not a readable PyTorch {kind} ({type(error).__name__}: {error})") from error


def check_weights_fit(module: nn.Module, state: Mapping[str, Any], path: str | os.PathLike, what: str) -> None:
    """DataError naming `path` unless `state` holds exactly `module`'s keys at its shapes, listing
    the missing, unexpected and wrongly shaped keys (``load_state_dict`` would stop at the first
    kind, deep in a stack). `what` names the weights in the message."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(key for key in set(expected) & set(state) if tuple(expected[key].shape) != tuple(state[key].shape))
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape))
        if keys
    ]
    if problems:
        raise DataError(path, f"{what} do not fit the {type(module).__name__}: " + "; ".join(problems))


def read_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """A checkpoint written by this project's bundles: ``{"model": weights, "network_settings": ...}``."""
    checkpoint = read_torch_file(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get(SETTINGS_KEY), Mapping):
        keys = sorted(checkpoint)[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise DataError(
            path,
            f"not a RECLF checkpoint: no {SETTINGS_KEY!r} entry (found {keys}); RECLF checkpoints are the "
            "model.pt and checkpoint_epoch=E.pt files that this project's bundles write (image-only weights: ImageNet's, "
            "GLoRIA's, MGCA's, serve the classification and segmentation bundles, which need no text encoder)",
        )
    if not isinstance(checkpoint.get(WEIGHTS_KEY), Mapping):
        raise DataError(path, f"RECLF checkpoint without weights: no {WEIGHTS_KEY!r} entry")
    return checkpoint


def read_network_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The settings stored in a RECLF checkpoint (``model.pt`` or ``checkpoint_epoch=E.pt``), with
    the :data:`ADDED_SETTINGS` a checkpoint older than them lacks, at the value it was trained with
    (so that a bundle config can read every setting of the encoder)."""
    return with_added_settings(read_checkpoint(path)[SETTINGS_KEY])


def with_added_settings(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `saved` settings holding every :data:`ADDED_SETTINGS` (at its earlier value where absent)."""
    settings = copy.deepcopy(dict(saved))
    for flat_name, value in ADDED_SETTINGS.items():
        section, _, name = flat_name.rpartition(".")
        if not section:
            settings.setdefault(name, value)
        elif isinstance(settings.get(section), Mapping):
            settings[section] = {name: value, **settings[section]}
    return settings


def load_pretrained_weights(network: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a checkpoint's weights into `network` (or its DDP wrapper) and return `network`.

    The checkpoint's settings must equal the network's (apart from :data:`NOT_COMPARED`) and every
    weight must fit; otherwise a DataError names the file and each difference.
    """
    checkpoint = read_checkpoint(path)
    model = unwrap(network)
    NetworkSettings(model, source=path).load_state_dict(checkpoint[SETTINGS_KEY])
    try:
        model.load_state_dict(checkpoint[WEIGHTS_KEY])
    except RuntimeError as error:
        raise DataError(path, f"weights do not fit the network: {error}") from error
    logger.info("loaded weights from %s (%s)", path, describe_settings(checkpoint[SETTINGS_KEY]))
    return network


def describe_settings(settings: Mapping[str, Any]) -> str:
    """The settings a log line names: aggregation, backbone, image size, classes (those present)."""
    flat = _flatten(settings)
    names = ("aggregation", "backbone", "image_encoder.backbone", "img_size", "image_encoder.img_size", "num_classes", "out_channels")
    return ", ".join(f"{name.split('.')[-1]} {flat[name]}" for name in names if name in flat)


# The hand-off from pretraining.


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


def pretraining_settings(
    pretrained_checkpoint: Optional[str | os.PathLike], explicit_settings: Optional[Mapping[str, Any]] = None
) -> dict[str, Any]:
    """The whole image-report model's settings stored in a RECLF pretraining checkpoint, for
    ``RECLFModel.from_settings``; DataError naming the file for any other file.

    Bundles that use the whole model (retrieval, grounding) take its architecture from here, also
    for the untrained baseline, so that both sides of a comparison are the same network. Without a
    checkpoint (None or the word none), `explicit_settings` if given (zero-shot's untrained
    baseline of a chosen shape).
    """
    pretrained_checkpoint = optional_path(pretrained_checkpoint, "pretrained_checkpoint")
    if pretrained_checkpoint is None and explicit_settings is not None:
        return dict(explicit_settings)
    if pretrained_checkpoint is None:
        raise ValueError(
            "the image-report model is built from a RECLF pretraining checkpoint's settings: give its path "
            "(reclf_pretrain's model.pt or checkpoint_epoch=E.pt); for the untrained baseline give it as well, "
            "with weights switched off (the bundles' --load_pretrain false)"
        )
    return dict(_pretraining_checkpoint(pretrained_checkpoint)[SETTINGS_KEY])


def is_foreign_encoder(pretrained_checkpoint: str | os.PathLike) -> bool:
    """Whether a downstream network's `pretrained_checkpoint` names image-encoder weights trained
    elsewhere (``imagenet``, or a file that is no RECLF checkpoint: torchvision's, GLoRIA's, MGCA's;
    see :mod:`foreign_encoders`) rather than a RECLF pretraining checkpoint."""
    if str(pretrained_checkpoint) == IMAGENET:
        return True
    contents = read_torch_file(pretrained_checkpoint)
    return not (isinstance(contents, Mapping) and SETTINGS_KEY in contents)


def image_encoder_settings(
    pretrained_checkpoint: Optional[str | os.PathLike] = None, **settings: Any
) -> dict[str, Any]:
    """:class:`ImageEncoder` settings: those stored in `pretrained_checkpoint`, else `settings`.

    With a checkpoint, a setting given as well must agree with the stored one (DataError naming
    the file and the setting otherwise): a downstream run never quietly uses another size. Foreign
    weights (:func:`is_foreign_encoder`) store no settings: their backbone comes from the file
    (``imagenet`` needs `backbone`), the rest from `settings` (default 224 px, 1 channel), in
    ImageNet form.
    """
    if pretrained_checkpoint is None:
        return dict(settings)
    if is_foreign_encoder(pretrained_checkpoint):
        return foreign_encoder_settings(pretrained_checkpoint, settings)
    stored = with_added_settings(_pretraining_checkpoint(pretrained_checkpoint)[SETTINGS_KEY])["image_encoder"]
    contradictions = [f"{name}: checkpoint {stored.get(name)!r}, requested {value!r}" for name, value in settings.items() if stored.get(name) != value]
    if contradictions:
        raise DataError(pretrained_checkpoint, "settings contradict the pretraining checkpoint: " + "; ".join(contradictions))
    return stored


def foreign_encoder_settings(pretrained_checkpoint: str | os.PathLike, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ImageEncoder settings for foreign weights: their backbone, ImageNet form, `settings` else."""
    backbone = settings.get("backbone")
    if str(pretrained_checkpoint) == IMAGENET:
        if backbone is None:
            raise ValueError("--pretrained_checkpoint imagenet needs the backbone: give --backbone (resnet18/34/50, efficientnet-lite0)")
    else:
        found = backbone_weights(read_torch_file(pretrained_checkpoint), pretrained_checkpoint)[1]
        if backbone not in (None, found):
            raise DataError(pretrained_checkpoint, f"holds {found} weights, but --backbone {backbone} was given")
        backbone = found
    if settings.get("imagenet_input") is False:
        raise DataError(pretrained_checkpoint, "ImageNet-style weights take their input in ImageNet form; imagenet_input false contradicts them")
    return {"img_size": 224, "in_channels": 1, **settings, "backbone": backbone, "imagenet_input": True}


def load_image_encoder(pretrained_checkpoint: Optional[str | os.PathLike] = None, **settings: Any) -> ImageEncoder:
    """The pretrained :class:`ImageEncoder` of a RECLF checkpoint or of foreign weights
    (:func:`is_foreign_encoder`), or a random one (no checkpoint).

    `settings` (backbone, img_size, embed_dim, ...) build the random encoder; with a RECLF
    checkpoint they may only repeat what it stores.
    """
    settings = image_encoder_settings(pretrained_checkpoint, **settings)
    if pretrained_checkpoint is not None and is_foreign_encoder(pretrained_checkpoint):
        return ImageEncoder(**settings, image_weights=pretrained_checkpoint)
    encoder = ImageEncoder(**settings)
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


def pretrained_or_untrained(
    network: nn.Module,
    pretrained_checkpoint: Optional[str | os.PathLike],
    load_pretrain: Any = True,
    device: Optional[str | torch.device] = None,
) -> nn.Module:
    """`network` with the weights of `pretrained_checkpoint` (settings checked, see
    :func:`load_pretrained_weights`) when `load_pretrain`, else `network` as initialised, logged as
    the untrained baseline; moved to `device` if given.

    The bundles pass their settings as the CLI gives them: `load_pretrain` may be a word (false,
    off...), `pretrained_checkpoint` the word none.
    """
    pretrained_checkpoint = optional_path(pretrained_checkpoint, "pretrained_checkpoint")
    if switch_on(load_pretrain, "load_pretrain"):
        if pretrained_checkpoint is None:
            raise ValueError(
                "load_pretrain is true but no pretrained_checkpoint was given: pass --pretrained_checkpoint PATH "
                "(reclf_pretrain's model.pt or checkpoint_epoch=E.pt), or --load_pretrain false for the untrained baseline"
            )
        network = load_pretrained_weights(network, pretrained_checkpoint)
    else:
        source = f"the settings of {pretrained_checkpoint}" if pretrained_checkpoint is not None else "the explicit settings (no checkpoint)"
        logger.warning("untrained baseline: random weights, network from %s (%s)", source, describe_settings(unwrap(network).settings))
    return network if device is None else network.to(device)


# Backbone weight files and segmentation checkpoints.


def load_backbone_weights(module: nn.Module, image_weights: str | os.PathLike, backbone: str) -> None:
    """Load ImageNet weights (``imagenet`` or a file, see ``ImageEncoder``'s `image_weights`) into the
    `backbone` network `module`; every key must fit (else a DataError naming the file and the keys)."""
    state, path = read_image_weights(image_weights, backbone)
    if backbone == "efficientnet-lite0":
        state = from_flat_block_names(state, module)
    check_weights_fit(module, state, path, "image weights")
    module.load_state_dict(state)
    logger.info("%s initialised from %s", backbone, path)


UNET_SETTINGS = ("out_channels", "decoder_channels", "image_encoder")


def read_unet_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The settings stored in a :class:`PretrainedUNet` checkpoint, from which evaluation and
    inference build the network; DataError naming the file for any other checkpoint."""
    settings = read_network_settings(path)
    missing = [name for name in UNET_SETTINGS if name not in settings]
    if missing:
        raise DataError(
            path,
            f"not a segmentation checkpoint: its settings lack {', '.join(missing)} (found {', '.join(sorted(settings))}); "
            "evaluation and inference read the model.pt that reclf_segmentation's training writes",
        )
    return settings
