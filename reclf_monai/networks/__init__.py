"""Networks for image-report pretraining: encoders, local matching, relation modules, the model."""

from reclf_monai.networks.checkpoint_settings import (
    NetworkSettings,
    load_pretrained_weights,
    read_network_settings,
    settings_differences,
)
from reclf_monai.networks.image_encoder import BACKBONES, ImageEncoder, load_backbone_weights
from reclf_monai.networks.local_matching import LOCAL_AGGREGATIONS, LocalMatching
from reclf_monai.networks.reclf_model import AGGREGATIONS, RECLFModel
from reclf_monai.networks.relation_modules import ImportanceRelationModule, SemanticRelationModule, masked_softmax
from reclf_monai.networks.temperature import Temperature
from reclf_monai.networks.text_encoder import TextEncoder

__all__ = [
    "AGGREGATIONS",
    "BACKBONES",
    "LOCAL_AGGREGATIONS",
    "ImageEncoder",
    "ImportanceRelationModule",
    "LocalMatching",
    "NetworkSettings",
    "RECLFModel",
    "SemanticRelationModule",
    "Temperature",
    "TextEncoder",
    "load_backbone_weights",
    "load_pretrained_weights",
    "masked_softmax",
    "read_network_settings",
    "settings_differences",
]
