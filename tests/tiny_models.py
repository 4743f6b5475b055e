"""Tiny RECLF models built without downloads (a ResNet-18 and an untrained BERT of one or two
layers, 16-d joint space), the local MiniLM tokenizer that feeds them, and reports to tokenize."""

import torch
from transformers import AutoTokenizer

from reclf_monai.data.tokenization import default_text_encoder_path
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder

EMBED = 16
TWO_LAYER_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
ONE_LAYER_BERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
REPORTS = ["No pleural effusion.", "Opacity in the right upper lobe.", "Mild cardiomegaly.", "Normal chest, no acute disease."]
VARIED_REPORTS = REPORTS + [
    "Heart size is normal. The lungs are clear without focal consolidation, effusion or pneumothorax.",
    "Stable.",
    "There is a small left pleural effusion with adjacent atelectasis; no pneumothorax is seen.",
    "Clear lungs.",
    "Degenerative changes of the thoracic spine. Calcified granuloma in the right upper lobe.",
]


def tokenize(texts, max_length=12):
    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def tiny_text_encoder(**kwargs):
    return TextEncoder(embed_dim=EMBED, pretrained=False, config_overrides=TWO_LAYER_BERT, **kwargs)


def tiny_two_layer_model(aggregation="reclf", **kwargs):
    """The encoder and model tests' model: two BERT layers, `kwargs` passed on to RECLFModel."""
    torch.manual_seed(0)
    return RECLFModel(
        ImageEncoder("resnet18", in_channels=1, embed_dim=EMBED),
        tiny_text_encoder(),
        aggregation,
        match_dim=8,
        relation_heads=2,
        **kwargs,
    )


def tiny_one_layer_model(aggregation="mean", img_size=64, freeze_layers=0, max_length=32, feature_norm=False, score_importance=False):
    """The checkpoint tests' model: one BERT layer, the settings that checkpoints record as arguments."""
    torch.manual_seed(0)
    return RECLFModel(
        ImageEncoder("resnet18", in_channels=1, embed_dim=16, img_size=img_size, feature_norm=feature_norm),
        TextEncoder(
            embed_dim=16, pretrained=False, config_overrides=ONE_LAYER_BERT, freeze_layers=freeze_layers, max_length=max_length
        ),
        aggregation,
        match_dim=8,
        relation_heads=2,
        score_importance=score_importance,
    )
