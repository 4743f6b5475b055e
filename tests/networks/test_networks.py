"""Image/text encoders and the RECLF model, with tiny networks (no downloads)."""

import pytest
import torch
from monai.networks.utils import convert_to_torchscript
from tiny_models import EMBED, REPORTS, TWO_LAYER_BERT, VARIED_REPORTS, tiny_text_encoder, tiny_two_layer_model, tokenize
from transformers import AutoTokenizer

from reclf_monai.data.tokenization import default_text_encoder_path
from reclf_monai.losses import ContrastiveLoss
from reclf_monai.networks import AGGREGATIONS, ImageEncoder, RECLFModel, TextEncoder
from reclf_monai.networks.length_groups import by_length_groups

torch.set_num_threads(1)


def images(batch=4, size=64):
    return torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- image encoder


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("local_layer, grid", [("layer3", 4), ("layer4", 2)])
def test_resnet_encoder_gives_patch_map_and_global_vector(backbone, local_layer, grid):
    encoder = ImageEncoder(backbone, in_channels=1, embed_dim=EMBED, local_layer=local_layer)
    patch_map, global_vector = encoder(images(batch=2))
    assert patch_map.shape == (2, EMBED, grid, grid)  # 64 px: layer3 at 1/16, layer4 at 1/32
    assert global_vector.shape == (2, EMBED)


def test_resnet_encoder_takes_three_channels_and_is_scriptable():
    encoder = ImageEncoder("resnet18", in_channels=3, embed_dim=EMBED).eval()
    image = torch.randn(2, 3, 64, 64)
    scripted = torch.jit.script(encoder)
    for mine, theirs in zip(encoder(image), scripted(image)):
        assert torch.allclose(mine, theirs, atol=1e-5)


def test_vit_encoder_gives_token_grid():
    pytest.importorskip("einops")  # monai.networks.nets.ViT needs it
    vit_config = {"patch_size": 16, "hidden_size": 32, "mlp_dim": 64, "num_layers": 2, "num_heads": 2}
    encoder = ImageEncoder("vit", in_channels=1, embed_dim=EMBED, img_size=64, vit_config=vit_config)
    patch_map, global_vector = encoder(images(batch=2))
    assert patch_map.shape == (2, EMBED, 4, 4)
    assert global_vector.shape == (2, EMBED)


def test_feature_norm_spreads_the_embeddings_of_a_backbone_trained_from_scratch():
    """At initialisation a ResNet's pooled features are non-negative, so different images' global
    embeddings are nearly parallel; batch-normalising the features first removes that shared part."""
    images = torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    off_diagonal = ~torch.eye(8, dtype=torch.bool)
    mean_cosine = {}
    for feature_norm in (False, True):
        torch.manual_seed(0)
        encoder = ImageEncoder("resnet18", in_channels=1, embed_dim=16, img_size=64, feature_norm=feature_norm).train()
        patches, global_embedding = encoder(images)
        assert patches.shape == (8, 16, 4, 4) and global_embedding.shape == (8, 16)
        unit = torch.nn.functional.normalize(global_embedding.detach(), dim=-1)
        mean_cosine[feature_norm] = (unit @ unit.T)[off_diagonal].mean().item()
    assert mean_cosine[False] > 0.6 and abs(mean_cosine[True]) < 0.3, mean_cosine  # 0.82 and -0.14 here


def test_feature_norm_reads_the_words_the_bundle_cli_passes():
    """``--network_def#image_encoder#feature_norm false`` arrives as the string 'false', which is truthy."""
    assert isinstance(ImageEncoder("resnet18", embed_dim=8, feature_norm="false").global_norm, torch.nn.Identity)
    encoder = ImageEncoder("resnet18", embed_dim=8, feature_norm="true", imagenet_input="no")
    assert isinstance(encoder.global_norm, torch.nn.BatchNorm1d) and encoder.settings["feature_norm"] is True
    assert encoder.settings["imagenet_input"] is False


def test_unknown_backbone_is_rejected():
    with pytest.raises(ValueError, match="unknown backbone"):
        ImageEncoder("densenet121")


# ---------------------------------------------------------------- text encoder


def test_default_text_encoder_is_the_local_minilm_with_glorias_text_handling():
    encoder = TextEncoder(embed_dim=EMBED)
    assert encoder.model.config.hidden_size == 384 and encoder.model.config.num_hidden_layers == 6
    assert {name: encoder.settings[name] for name in ("last_n_layers", "word_pieces", "sep_as_word")} == {
        "last_n_layers": 4, "word_pieces": "sum", "sep_as_word": True
    }  # fmt: skip
    input_ids, attention_mask = tokenize(REPORTS[:2])
    features = encoder(input_ids, attention_mask)
    assert features["tokens"].shape == (2, 12, EMBED)
    assert features["global"].shape == (2, EMBED)
    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    for row, text in enumerate(REPORTS[:2]):
        words = len([piece for piece in tokenizer.tokenize(text) if not piece.startswith("##")])
        expected = torch.zeros(12, dtype=torch.bool)
        expected[1 : 2 + words] = True  # [CLS] words [SEP] [PAD]...: the words and [SEP]
        assert torch.equal(features["word_mask"][row], expected)


def test_token_level_matching_masks_every_special_token():
    encoder = TextEncoder(embed_dim=EMBED, last_n_layers=1, word_pieces="tokens", sep_as_word=False)
    input_ids, attention_mask = tokenize(REPORTS[:2])
    features = encoder(input_ids, attention_mask)
    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    for row, text in enumerate(REPORTS[:2]):
        expected = torch.zeros(12, dtype=torch.bool)
        expected[1 : 1 + len(tokenizer.tokenize(text))] = True  # [CLS] pieces [SEP] [PAD]...
        assert torch.equal(features["word_mask"][row], expected)
    assert "token_words" not in features


def test_padding_does_not_change_text_features():
    encoder = tiny_text_encoder().eval()
    short = encoder(*tokenize(REPORTS, max_length=12))
    long = encoder(*tokenize(REPORTS, max_length=20))
    assert torch.allclose(short["global"], long["global"], atol=1e-5)
    assert torch.allclose(short["tokens"][short["word_mask"]], long["tokens"][long["word_mask"]], atol=1e-5)


@pytest.mark.parametrize("report_dim", [0, 1])
def test_length_groups_put_outputs_back_in_report_order_zero_padded(report_dim):
    lengths = torch.tensor([5, 1, 8, 3, 8, 2, 6])
    mask = torch.arange(8) < lengths[:, None]
    values = torch.randn(7, 8, 3) * mask[..., None]
    if report_dim:
        values = torch.stack([values, -values])

    def run(group, length):
        assert length == int(lengths[group].max())
        picked = values.index_select(report_dim, group)
        return (picked[:, :, :length] if report_dim else picked[:, :length]) * 2, None

    doubled, nothing = by_length_groups(mask, run, groups=3, report_dim=report_dim)
    assert nothing is None
    assert torch.equal(doubled, values * 2)


def test_text_length_groups_equal_one_padded_pass():
    encoder = tiny_text_encoder(last_n_layers=1, word_pieces="tokens").eval()
    encoder.enable_cls_attention()
    calls, forward = [], encoder.model.forward
    encoder.model.forward = lambda *args, **kwargs: calls.append(kwargs["input_ids"].shape) or forward(*args, **kwargs)
    input_ids, attention_mask = tokenize(VARIED_REPORTS * 4, max_length=24)
    features = encoder(input_ids, attention_mask)
    assert [shape[0] for shape in calls] == [9, 9, 9, 9]  # 36 reports: 4 groups, cut to their lengths
    assert max(shape[1] for shape in calls) == 24 and min(shape[1] for shape in calls) < 24
    encoder(*tokenize(REPORTS))
    assert len(calls) == 5  # 4 reports: one group (every model call has a fixed cost)
    output = encoder.model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    hidden = output.last_hidden_state
    weights = attention_mask[..., None].float()
    expected_global = encoder.global_projection((hidden * weights).sum(1) / weights.sum(1))
    real = attention_mask.bool()
    assert torch.allclose(features["global"], expected_global, atol=1e-5)
    assert torch.allclose(features["tokens"][real], encoder.token_projection(hidden)[real], atol=1e-5)
    expected_attention = output.attentions[-1][:, :, 0, :].mean(1)
    assert torch.allclose(features["cls_attention"], expected_attention, atol=1e-6)


def test_frozen_text_layers_stay_in_eval_mode_in_training():
    model = tiny_two_layer_model()
    model.text_encoder.freeze_lower_layers(1)
    model.train()
    text = model.text_encoder.model
    assert not text.embeddings.training and not text.encoder.layer[0].training
    assert text.encoder.layer[1].training and model.image_encoder.training
    model.eval()
    assert not text.encoder.layer[1].training


def test_freeze_layers_freezes_embeddings_and_lower_layers():
    encoder = tiny_text_encoder(freeze_layers=1)
    assert not any(p.requires_grad for p in encoder.model.embeddings.parameters())
    assert not any(p.requires_grad for p in encoder.model.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in encoder.model.encoder.layer[1].parameters())
    assert all(p.requires_grad for p in encoder.token_projection.parameters())
    with pytest.raises(ValueError, match="cannot freeze 3 layers of a 2-layer"):
        tiny_text_encoder(freeze_layers=3)


def test_cls_attention_is_a_distribution_over_real_tokens():
    encoder = tiny_text_encoder().eval()  # (in training, attention dropout perturbs the weights)
    input_ids, attention_mask = tokenize(REPORTS)
    assert "cls_attention" not in encoder(input_ids, attention_mask)
    encoder.enable_cls_attention()
    attention = encoder(input_ids, attention_mask)["cls_attention"]
    assert attention.shape == input_ids.shape
    assert torch.allclose(attention.sum(-1), torch.ones(len(REPORTS)), atol=1e-5)
    assert torch.all(attention[attention_mask == 0] < 1e-6)


def test_text_encoder_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="need pretrained=False"):
        TextEncoder(config_overrides=TWO_LAYER_BERT)
    with pytest.raises(FileNotFoundError, match="not found"):
        TextEncoder(tmp_path / "no_such_model")


# ---------------------------------------------------------------- RECLF model


def test_image_only_forward_gives_unit_embeddings_and_traces_for_export(tmp_path):
    model = tiny_two_layer_model().eval()
    embedding = model(images())
    assert embedding.shape == (4, EMBED)
    assert torch.allclose(embedding.norm(dim=-1), torch.ones(4), atol=1e-5)
    # what `monai.bundle ckpt_export --use_trace True` does (the text encoder is not scriptable)
    exported = convert_to_torchscript(
        model, filename_or_obj=tmp_path / "model.ts", use_trace=True, inputs=[images(batch=1)], verify=True
    )
    assert torch.allclose(torch.jit.load(tmp_path / "model.ts")(images()), embedding, atol=1e-5)
    assert torch.allclose(exported(images()), embedding, atol=1e-5)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_forward_returns_logits_for_all_pairs(aggregation):
    model = tiny_two_layer_model(aggregation)
    output = model(images(), *tokenize(REPORTS))
    assert output["global_logits"].shape == (4, 4)
    assert torch.allclose(output["global_temperature"], torch.tensor(0.07))
    if aggregation == "global_only":
        assert "local_logits" not in output and model.local_matching is None
    else:
        assert output["local_logits"].shape == (4, 4)
        # `lse`: GLoRIA's fixed 1 / temp3; otherwise the default (learned) local temperature
        assert torch.allclose(output["local_temperature"], torch.tensor(0.1))
        assert model.local_temperature.log_tau.requires_grad == (aggregation != "lse")


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_each_aggregation_trains_on_a_fixed_batch(aggregation):
    model = tiny_two_layer_model(aggregation)
    loss_function = ContrastiveLoss()
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    batch = (images(), *tokenize(REPORTS))
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = loss_function(model(*batch))
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def test_global_only_ignores_the_local_side():
    model = tiny_two_layer_model("global_only").eval()
    assert not model.image_encoder.local_projection.weight.requires_grad
    assert not model.text_encoder.token_projection.weight.requires_grad
    batch = (images(), *tokenize(REPORTS))
    before = model(*batch)["global_logits"]
    with torch.no_grad():
        model.image_encoder.local_projection.weight.mul_(-3)
        model.text_encoder.token_projection.weight.normal_()
    assert torch.equal(model(*batch)["global_logits"], before)
    loss = ContrastiveLoss(global_weight=1.0, local_weight=5.0)
    assert set(loss.parts) == set()
    loss(model(*batch))
    assert set(loss.parts) == {"loss_global", "temperature_global"}


def test_reclf_gradients_reach_both_encoders_and_the_relation_modules():
    model = tiny_two_layer_model("reclf")
    ContrastiveLoss()(model(images(), *tokenize(REPORTS))).backward()
    for name, parameter in [
        ("image backbone", model.image_encoder.features.backbone.conv1.weight),
        ("text model", model.text_encoder.model.embeddings.word_embeddings.weight),
        ("SRM g", model.local_matching.srm.score_correction.weight),
        ("IRM output", model.local_matching.irm.importance[-1].weight),
        ("local temperature", model.local_temperature.log_tau),
    ]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_relation_modules_get_their_own_learning_rate():
    model = tiny_two_layer_model("reclf")
    trainable = {id(parameter) for parameter in model.parameters() if parameter.requires_grad}
    relation = {id(parameter) for parameter in model.local_matching.parameters()}
    groups = model.parameter_groups(1e-4, relation_lr_scale=10)
    assert [group["lr"] for group in groups] == [1e-4, pytest.approx(1e-3)]
    assert {id(parameter) for parameter in groups[1]["params"]} == relation
    assert {id(parameter) for parameter in groups[0]["params"]} == trainable - relation
    assert all(parameter.requires_grad for group in groups for parameter in group["params"])
    single = model.parameter_groups(1e-4)
    assert len(single) == 1 and single[0]["lr"] == 1e-4 and {id(parameter) for parameter in single[0]["params"]} == trainable
    assert len(tiny_two_layer_model("lse").parameter_groups(1e-4, relation_lr_scale=10)) == 1  # no relation modules
    optimizer = torch.optim.AdamW(groups, lr=1e-4)
    ContrastiveLoss()(model(images(), *tokenize(REPORTS))).backward()
    irm_output = model.local_matching.irm.importance[-1].weight
    backbone = model.image_encoder.features.backbone.conv1.weight
    before = irm_output.detach().clone(), backbone.detach().clone()
    optimizer.step()  # Adam's first step moves each weight by about its group's lr
    assert (irm_output - before[0]).abs().max().item() == pytest.approx(1e-3, rel=0.05)
    assert (backbone - before[1]).abs().max().item() == pytest.approx(1e-4, rel=0.05)
    with pytest.raises(ValueError, match="relation_lr_scale must be positive"):
        model.parameter_groups(1e-4, relation_lr_scale=0)


def test_the_pretrained_text_transformer_gets_its_own_learning_rate():
    model = tiny_two_layer_model("reclf")
    trainable = {id(parameter) for parameter in model.parameters() if parameter.requires_grad}
    transformer = {id(parameter) for parameter in model.text_encoder.model.parameters() if parameter.requires_grad}
    relation = {id(parameter) for parameter in model.local_matching.parameters()}
    assert transformer and relation
    groups = model.parameter_groups(1e-4, relation_lr_scale=10, text_lr_scale=0.1)
    assert sorted(group["lr"] for group in groups) == [pytest.approx(1e-5), 1e-4, pytest.approx(1e-3)]
    by_rate = {round(group["lr"], 9): {id(parameter) for parameter in group["params"]} for group in groups}
    assert by_rate[1e-5] == transformer and by_rate[1e-3] == relation
    assert by_rate[1e-4] == trainable - transformer - relation  # image encoder, projections, temperatures
    projections = {id(parameter) for parameter in model.text_encoder.token_projection.parameters()}
    assert projections <= by_rate[1e-4]
    same_rate = model.parameter_groups(1e-4, text_lr_scale=0.1)
    assert [group["lr"] for group in same_rate] == [1e-4, pytest.approx(1e-5)]
    with pytest.raises(ValueError, match="text_lr_scale must be positive"):
        model.parameter_groups(1e-4, text_lr_scale=0)


def test_fixed_importance_switches_the_text_encoder_to_cls_attention():
    model = tiny_two_layer_model("fixed_importance")
    assert model.text_encoder.returns_cls_attention
    text = model.encode_text(*tokenize(REPORTS))
    assert text["cls_attention"].shape == (4, 12)


def test_similarity_scores_images_against_any_number_of_prompts():
    model = tiny_two_layer_model("reclf").eval()
    with torch.no_grad():
        scores = model.similarity(model.encode_image(images(batch=3)), model.encode_text(*tokenize(REPORTS + ["Pneumothorax."])))
    assert scores["global"].shape == scores["local"].shape == (3, 5)
    assert torch.all(scores["global"].abs() <= 1 + 1e-5)


def test_model_runs_under_cpu_bfloat16_autocast():
    model = tiny_two_layer_model("reclf")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(images(), *tokenize(REPORTS))
        loss = ContrastiveLoss()(output)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.local_matching.srm.score_correction.weight.grad).all()


@pytest.mark.parametrize("learn, learnable", [("false", False), ("True", True), (False, False)])
def test_learn_temperatures_reads_the_words_the_bundle_cli_passes(learn, learnable):
    """``--network_def#learn_temperatures false`` arrives as the string 'false', which is truthy."""
    model = tiny_two_layer_model("mean", learn_temperatures=learn)
    temperatures = (model.global_temperature.log_tau, model.local_temperature.log_tau)
    assert all(isinstance(tau, torch.nn.Parameter) == learnable for tau in temperatures)
    assert model.settings["learn_temperatures"] is learnable
    with pytest.raises(ValueError, match="--learn_temperatures must be true or false"):
        tiny_two_layer_model("mean", learn_temperatures="fixed")


def test_encoders_must_share_the_joint_dimension():
    with pytest.raises(ValueError, match="share embed_dim"):
        RECLFModel(ImageEncoder("resnet18", embed_dim=8), tiny_text_encoder())
    with pytest.raises(ValueError, match="unknown aggregation"):
        tiny_two_layer_model("max")
