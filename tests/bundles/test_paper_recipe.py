"""reclf_pretrain's configs/paper.json, GLoRIA's published pretraining recipe as an overlay of
train.json: what it sets, and one training iteration on a CPU with tiny stand-ins for its
downloads (a 4-layer BERT with the local WordPiece tokenizer for Bio_ClinicalBERT, random weights
in torchvision's layout for the ImageNet ResNet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bundle_testing import BUNDLES
from monai.bundle import ConfigParser, ConfigWorkflow
from torchvision_layout import torchvision_file
from transformers import AutoTokenizer, BertConfig, BertModel

from reclf_monai.data.tokenization import default_text_encoder_path

pytestmark = pytest.mark.end_to_end

CONFIGS = BUNDLES / "reclf_pretrain" / "configs"
# What the overlay adds to train.json rather than overrides: Adam's betas and the model's fixed
# temperatures (arguments train.json leaves at RECLFModel's defaults).
ADDED = {
    "optimizer#betas",
    *(
        f"network_def#{name}"
        for name in ("global_temperature", "local_temperature", "learn_temperatures", "gloria_temp1", "gloria_temp2")
    ),
}


def test_paper_overlay_sets_glorias_recipe_on_settings_train_json_has():
    paper = json.loads((CONFIGS / "paper.json").read_text())
    train = ConfigParser(ConfigParser.load_config_file(CONFIGS / "train.json"))
    assert [key for key in paper if key not in train and key not in ADDED] == []
    merged = ConfigParser(ConfigParser.load_config_files([CONFIGS / "train.json", CONFIGS / "paper.json"]))
    recipe = {
        "backbone": "resnet50", "image_weights": "imagenet", "load_size": 256, "image_size": 224,
        "text_encoder": "emilyalsentzer/Bio_ClinicalBERT", "text_last_n_layers": 4, "word_pieces": "sum",
        "batch_size": 48, "learning_rate": 5e-5, "weight_decay": 1e-6, "amp": True, "gradient_clip_norm": 0.25,
        "network_def#gloria_temp1": 4.0, "network_def#gloria_temp2": 5.0, "network_def#global_temperature": 0.1,
        "network_def#local_temperature": 0.1, "loss#global_weight": 1.0, "loss#local_weight": 1.0,
        "train#trainer#max_epochs": 50, "optimizer#_target_": "torch.optim.Adam",
    }  # fmt: skip
    assert {key: merged[key] for key in recipe} == recipe


@pytest.fixture
def tiny_clinical_bert(tmp_path) -> Path:
    """A 4-layer, 32-wide BERT folder with the local WordPiece tokenizer, standing in for Bio_ClinicalBERT."""
    folder = tmp_path / "tiny_bert"
    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_one_iteration_of_the_paper_recipe_with_tiny_stand_ins(pretraining_corpus, tiny_clinical_bert, tmp_path):
    weights = tmp_path / "resnet18-imagenet.pth"
    stored = torchvision_file(weights, "resnet18")
    flow = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "paper.json")],
        workflow_type="train",
        bundle_root=str(BUNDLES / "reclf_pretrain"),
        dataset_dir=str(pretraining_corpus),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(tmp_path / "eval"),
        # the stand-ins and a CPU-sized step; everything else is the recipe
        backbone="resnet18", image_weights=str(weights), text_encoder=str(tiny_clinical_bert),
        image_size=64, load_size=72, embed_dim=32, batch_size=4, amp=False, num_workers=0, cache_rate=0,
        val_interval=2, **{"train#trainer#max_epochs": 1, "train#trainer#epoch_length": 1},
    )  # fmt: skip
    flow.initialize()
    flow.run()
    trainer = flow.train_trainer if hasattr(flow, "train_trainer") else flow.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 1
    optimizer = flow.parser.get_parsed_content("optimizer")
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["betas"] == (0.5, 0.999)
    assert optimizer.defaults["lr"] == 5e-5 and optimizer.defaults["weight_decay"] == 1e-6
    network = flow.parser.get_parsed_content("network")
    gradients = [p.grad for p in network.parameters() if p.grad is not None]
    assert gradients and float(torch.linalg.vector_norm(torch.stack([g.norm() for g in gradients]))) <= 0.25 + 1e-4
    settings = network.settings
    assert settings["image_encoder"]["imagenet_input"] is True
    assert (settings["text_encoder"]["last_n_layers"], settings["text_encoder"]["word_pieces"]) == (4, "sum")
    batch = trainer.state.batch
    assert tuple(batch["image"].shape[-2:]) == (64, 64)  # loaded at 72, randomly cropped to 64
    moved = network.image_encoder.features.backbone.conv1.weight.detach()
    assert moved.shape == stored["conv1.weight"].shape and not torch.equal(moved, stored["conv1.weight"])  # it trained from them
    assert torch.allclose(moved, stored["conv1.weight"], atol=1e-3)  # one Adam step of 5e-5
    flow.finalize()
