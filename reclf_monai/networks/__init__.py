"""Networks for image-report pretraining: encoders, local matching, relation modules, the model."""

from reclf_monai.networks.checkpoints import (
    NetworkSettings,
    describe_settings,
    image_encoder_settings,
    load_backbone_weights,
    load_image_encoder,
    load_pretrained_weights,
    pretrained_encoder_weights,
    pretrained_or_untrained,
    pretraining_settings,
    read_checkpoint,
    read_network_settings,
    read_unet_settings,
    save_checkpoint,
    settings_differences,
)
from reclf_monai.networks.classification_task import ClassificationTask
from reclf_monai.networks.downstream import ImageClassifier, PretrainedResNetEncoder, PretrainedUNet, freeze, trainable_parameters
from reclf_monai.networks.grounding import phrase_heatmap, phrase_heatmaps
from reclf_monai.networks.image_encoder import BACKBONES, ImageEncoder
from reclf_monai.networks.local_matching import LOCAL_AGGREGATIONS, LocalMatching
from reclf_monai.networks.reclf_model import AGGREGATIONS, RECLFModel
from reclf_monai.networks.relation_modules import ImportanceRelationModule, SemanticRelationModule, masked_softmax
from reclf_monai.networks.temperature import Temperature
from reclf_monai.networks.text_encoder import TextEncoder

__all__ = [
    "AGGREGATIONS",
    "BACKBONES",
    "LOCAL_AGGREGATIONS",
    "ClassificationTask",
    "ImageClassifier",
    "ImageEncoder",
    "ImportanceRelationModule",
    "LocalMatching",
    "NetworkSettings",
    "PretrainedResNetEncoder",
    "PretrainedUNet",
    "RECLFModel",
    "SemanticRelationModule",
    "Temperature",
    "TextEncoder",
    "describe_settings",
    "freeze",
    "image_encoder_settings",
    "load_backbone_weights",
    "load_image_encoder",
    "load_pretrained_weights",
    "masked_softmax",
    "phrase_heatmap",
    "phrase_heatmaps",
    "pretrained_encoder_weights",
    "pretrained_or_untrained",
    "pretraining_settings",
    "read_checkpoint",
    "read_network_settings",
    "read_unet_settings",
    "save_checkpoint",
    "settings_differences",
    "trainable_parameters",
]
