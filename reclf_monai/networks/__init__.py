"""Networks for image-report pretraining: encoders, local matching, relation modules, the model."""

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
    "RECLFModel",
    "SemanticRelationModule",
    "Temperature",
    "TextEncoder",
    "load_backbone_weights",
    "masked_softmax",
]
