"""The text encoder's cache of its frozen layers' output: same features, fewer frozen passes."""

import logging

import pytest
import torch
from tiny_models import EMBED, TWO_LAYER_BERT, VARIED_REPORTS, tokenize

from reclf_monai.networks import TextEncoder
from reclf_monai.networks.frozen_text_cache import FrozenOutputCache

torch.set_num_threads(1)


def encoder_pair(frozen_cache_mb=1.0):
    """Two tiny encoders with the same weights and one frozen layer, the second with a cache."""
    encoders = []
    for cache in (0.0, frozen_cache_mb):
        torch.manual_seed(0)
        encoders.append(
            TextEncoder(embed_dim=EMBED, pretrained=False, config_overrides=TWO_LAYER_BERT, freeze_layers=1, last_n_layers=1, frozen_cache_mb=cache).train()
        )
    return encoders


def step(encoder, input_ids, attention_mask, seed=1):
    """Features and the gradients of the trained parameters after one backward pass of a loss
    on the real words, as in training (padding positions are masked out of every loss)."""
    encoder.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks in the trained layer
    features = encoder(input_ids, attention_mask)
    words = features["tokens"][features["word_mask"]]
    (words.square().sum() + features["global"].square().sum()).backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters() if p.requires_grad}
    return features, grads


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_cached_frozen_output_gives_the_same_features_and_gradients(caplog):
    plain, cached = encoder_pair()
    input_ids, attention_mask = tokenize(VARIED_REPORTS * 4, max_length=24)  # 36 reports, 9 texts
    embedding_calls = count_calls(cached.model.embeddings)
    real = attention_mask.bool()
    for epoch in range(2):
        expected, expected_grads = step(plain, input_ids, attention_mask, seed=epoch)
        with caplog.at_level(logging.INFO, logger="reclf.text_cache"):
            features, grads = step(cached, input_ids, attention_mask, seed=epoch)
        assert torch.allclose(features["tokens"][real], expected["tokens"][real], atol=1e-5)
        assert torch.allclose(features["global"], expected["global"], atol=1e-5)
        assert torch.equal(features["word_mask"], expected["word_mask"])
        assert grads.keys() == expected_grads.keys() and "model.encoder.layer.1.output.dense.weight" in grads
        for name, grad in grads.items():
            assert torch.allclose(grad, expected_grads[name], rtol=1e-4, atol=1e-6), name
        if epoch == 0:
            assert len(cached.frozen_cache) == len(set(VARIED_REPORTS))
            first_epoch_calls = len(embedding_calls)
            assert first_epoch_calls > 0
    assert len(embedding_calls) == first_epoch_calls  # the second epoch ran no frozen layer
    assert caplog.text.count("frozen text layers' output kept per training report (up to 1 MiB)") == 1


def test_a_change_of_the_frozen_weights_empties_the_cache():
    plain, cached = encoder_pair()
    input_ids, attention_mask = tokenize(VARIED_REPORTS, max_length=24)
    step(cached, input_ids, attention_mask)
    assert len(cached.frozen_cache) == len(VARIED_REPORTS)
    torch.manual_seed(5)
    other = TextEncoder(embed_dim=EMBED, pretrained=False, config_overrides=TWO_LAYER_BERT, freeze_layers=1, last_n_layers=1).train()
    cached.load_state_dict(other.state_dict())
    expected, _ = step(other, input_ids, attention_mask)
    features, _ = step(cached, input_ids, attention_mask)
    real = attention_mask.bool()
    assert torch.allclose(features["tokens"][real], expected["tokens"][real], atol=1e-5)
    # Unfrozen layers, or frozen layers put back in training mode, are no longer fixed: no cache.
    cached.model.embeddings.requires_grad_(True)
    embedding_calls = count_calls(cached.model.embeddings)
    step(cached, input_ids, attention_mask)
    assert embedding_calls


def test_cache_is_used_in_training_mode_only_and_within_its_budget():
    _, cached = encoder_pair(frozen_cache_mb=0.01)  # 10 KiB: a 24-token report at width 32 takes 3 KiB
    input_ids, attention_mask = tokenize(VARIED_REPORTS, max_length=24)
    cached.eval()(input_ids, attention_mask)
    assert len(cached.frozen_cache) == 0
    cached.train()(input_ids, attention_mask)
    assert cached.frozen_cache.full and 0 < len(cached.frozen_cache) < len(VARIED_REPORTS)
    assert cached.frozen_cache.stored_bytes <= cached.frozen_cache.budget_bytes
    with pytest.raises(ValueError, match="budget must be positive"):
        FrozenOutputCache(-1)


def test_left_padded_reports_run_the_whole_model():
    plain, cached = encoder_pair()
    input_ids, attention_mask = tokenize(VARIED_REPORTS[:4], max_length=16)
    flipped_ids, flipped_mask = input_ids.flip(-1), attention_mask.flip(-1)  # padding first
    features, _ = step(cached, flipped_ids, flipped_mask)
    expected, _ = step(plain, flipped_ids, flipped_mask)
    assert len(cached.frozen_cache) == 0
    real = flipped_mask.bool()
    assert torch.allclose(features["tokens"][real], expected["tokens"][real], atol=1e-5)


def test_cache_turns_itself_off_when_the_layers_cannot_run_one_by_one(caplog, monkeypatch):
    plain, cached = encoder_pair()
    monkeypatch.setattr(cached, "_run_layers", lambda layers, hidden, mask: hidden * 2)
    input_ids, attention_mask = tokenize(VARIED_REPORTS, max_length=24)
    with caplog.at_level(logging.WARNING, logger="reclf.text_cache"):
        features, _ = step(cached, input_ids, attention_mask)
    assert cached.frozen_cache is None
    assert "cache turned off for BertModel: its layers give another output" in caplog.text
    expected, _ = step(plain, input_ids, attention_mask)
    real = attention_mask.bool()
    assert torch.allclose(features["tokens"][real], expected["tokens"][real], atol=1e-5)
