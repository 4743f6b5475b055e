"""Local matching: GLoRIA equality, masking, chunking, and gradients into SRM/IRM."""

import pytest
import torch
import torch.nn.functional as F

from reclf_monai.losses import SymmetricInfoNCE
from reclf_monai.networks import LOCAL_AGGREGATIONS, LocalMatching, masked_softmax
from research.gloria_reference import gloria_local_similarity

torch.set_num_threads(1)

B, P, T, D = 4, 16, 10, 24


def make_batch(seed=0, batch=B, tokens=T):
    """Random patches/words; each report has [CLS] at 0, words, [SEP], then padding."""
    generator = torch.Generator().manual_seed(seed)
    patches = torch.randn(batch, P, D, generator=generator)
    words = torch.randn(batch, tokens, D, generator=generator)
    lengths = torch.tensor([tokens - 2 - (j % 3) for j in range(batch)])
    positions = torch.arange(tokens)
    word_mask = (positions[None] >= 1) & (positions[None] <= lengths[:, None])
    importance = torch.rand(batch, tokens, generator=generator)
    return patches, words, word_mask, importance


@pytest.mark.parametrize("shortest", [6, 1], ids=["padded", "one_word_report"])
def test_lse_equals_gloria_formula_in_loss_and_gradients(shortest):
    patches, words, word_mask, _ = make_batch()
    word_mask[1, shortest + 1 :] = False
    temp3 = 10.0
    loss = SymmetricInfoNCE()
    inputs_fast = [patches.clone().requires_grad_(), words.clone().requires_grad_()]
    inputs_ref = [patches.clone().requires_grad_(), words.clone().requires_grad_()]

    fast = loss(temp3 * LocalMatching(D, "lse")(inputs_fast[0], inputs_fast[1], word_mask))
    reference = loss(temp3 * gloria_local_similarity(inputs_ref[0], inputs_ref[1], word_mask))
    fast.backward()
    reference.backward()

    # 1e-5 relative: float32 sums in another order differ by about 1e-6 here
    assert torch.allclose(fast, reference, rtol=1e-5, atol=0)
    for mine, theirs in zip(inputs_fast, inputs_ref):
        assert theirs.grad.abs().max() > 0
        assert (mine.grad - theirs.grad).norm() <= 1e-5 * theirs.grad.norm()


def test_shapes_for_unequal_image_and_report_counts():
    patches, words, word_mask, importance = make_batch()
    for aggregation in LOCAL_AGGREGATIONS:
        details = LocalMatching(D, aggregation, match_dim=8, relation_heads=2).match_details(
            patches[:3], words, word_mask, importance
        )
        assert details["similarity"].shape == (3, B)
        assert details["token_scores"].shape == details["token_weights"].shape == (3, B, T)
        assert details["attention"].shape == (3, B, T, P)
        weights = details["token_weights"]
        assert torch.all(weights[:, ~word_mask] == 0), aggregation
        assert torch.allclose(weights.sum(-1), torch.ones(3, B), atol=1e-5), aggregation


@pytest.mark.parametrize("aggregation", LOCAL_AGGREGATIONS)
def test_padding_tokens_never_change_scores(aggregation):
    patches, words, word_mask, importance = make_batch()
    torch.manual_seed(0)
    matching = LocalMatching(D, aggregation, match_dim=8, relation_heads=2).eval()
    _perturb_zero_initialised_layers(matching)
    extra = 5
    padded_words = torch.cat([words, 100 * torch.randn(B, extra, D)], dim=1)
    padded_mask = torch.cat([word_mask, torch.zeros(B, extra, dtype=torch.bool)], dim=1)
    padded_importance = torch.cat([importance, torch.rand(B, extra)], dim=1)
    # and garbage in the already-masked [CLS]/[SEP]/[PAD] slots must not matter either
    garbage_words = torch.where(word_mask[..., None], words, torch.randn_like(words))

    plain = matching(patches, words, word_mask, importance)
    padded = matching(patches, padded_words, padded_mask, padded_importance)
    garbage = matching(patches, garbage_words, word_mask, importance)
    assert torch.allclose(plain, padded, atol=1e-5)
    assert torch.allclose(plain, garbage, atol=1e-5)


@pytest.mark.parametrize("aggregation", LOCAL_AGGREGATIONS)
def test_chunked_equals_unchunked(aggregation):
    patches, words, word_mask, importance = make_batch()
    torch.manual_seed(0)
    whole = LocalMatching(D, aggregation, match_dim=8, relation_heads=2)
    _perturb_zero_initialised_layers(whole)
    chunked = LocalMatching(D, aggregation, match_dim=8, relation_heads=2, memory_budget_mb=1e-6)
    chunked.load_state_dict(whole.state_dict())
    assert chunked.images_per_chunk(B, T, P) == 1

    outputs, grads = [], []
    for matching in (whole, chunked):
        features = patches.clone().requires_grad_()
        score = matching(features, words, word_mask, importance)
        (score * torch.arange(B * B, dtype=torch.float32).view(B, B)).sum().backward()
        outputs.append(score)
        grads.append(features.grad)
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


@pytest.mark.parametrize("budget_mb, dropout", [(512.0, 0.5), (1e-6, 0.0)], ids=["one_block_with_dropout", "one_image_per_block"])
@pytest.mark.parametrize("aggregation", ["srm", "irm", "reclf"])
def test_recomputed_relation_modules_equal_plain_autograd(aggregation, budget_mb, dropout):
    # training recomputes SRM/IRM block by block in the backward pass (torch.utils.checkpoint);
    # match_details keeps everything (plain autograd). Same dropout masks: the RNG state is replayed.
    patches, words, word_mask, _ = make_batch()
    torch.manual_seed(0)
    matching = LocalMatching(D, aggregation, match_dim=8, relation_heads=2, relation_dropout=dropout, memory_budget_mb=budget_mb)
    _perturb_zero_initialised_layers(matching)
    pair_weights = torch.arange(B * B, dtype=torch.float32).view(B, B)
    results = []
    for run in (lambda *inputs: matching(*inputs), lambda *inputs: matching.match_details(*inputs)["similarity"]):
        matching.zero_grad()
        features = patches.clone().requires_grad_()
        torch.manual_seed(1)
        score = run(features, words, word_mask)
        (score * pair_weights).sum().backward()
        results.append((score.detach(), features.grad, {name: p.grad.clone() for name, p in matching.named_parameters()}))
    (recomputed, recomputed_grad, recomputed_params), (plain, plain_grad, plain_params) = results
    torch.testing.assert_close(recomputed, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(recomputed_grad, plain_grad, rtol=1e-4, atol=1e-5 * plain_grad.abs().max().item())
    relation_parameters = [name for name in plain_params if name.startswith(("srm.", "irm.", "matching_embedding."))]
    # one scale for all: IRM's output bias has a zero gradient (softmax ignores a shift), only rounding
    scale = max(plain_params[name].abs().max().item() for name in relation_parameters)
    assert scale > 0
    for name in relation_parameters:
        torch.testing.assert_close(recomputed_params[name], plain_params[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_training_keeps_no_relation_module_activations_for_the_backward_pass():
    # what autograd keeps: without recomputation SRM alone would keep pairs x heads x L x L
    # attention (about 25 of the pair tensors below here); recomputed, reclf keeps about what mean
    # keeps plus its blocks' inputs (the pairs' scores and d_m-sized projected contexts)
    batch, tokens, match_dim = 12, 40, 8
    patches, words, word_mask, _ = make_batch(batch=batch, tokens=tokens)
    patches.requires_grad_()

    def saved_bytes(aggregation):
        total = 0

        def pack(tensor):
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            LocalMatching(D, aggregation, match_dim=match_dim, relation_heads=2)(patches, words, word_mask)
        return total

    pair_tensor = batch * batch * tokens * match_dim * 4  # one float32 value per pair, token and d_m
    assert saved_bytes("reclf") - saved_bytes("mean") <= 4 * pair_tensor


@pytest.mark.parametrize("aggregation", ["srm", "reclf"])
def test_reports_of_very_different_lengths_score_as_if_alone(aggregation):
    """SRM runs on reports grouped by length; every column must still be its own report's."""
    generator = torch.Generator().manual_seed(3)
    reports, tokens = 9, 40
    patches = torch.randn(3, P, D, generator=generator)
    words = torch.randn(reports, tokens, D, generator=generator)
    lengths = torch.tensor([38, 2, 17, 30, 5, 1, 26, 11, 34])
    positions = torch.arange(tokens)
    word_mask = (positions[None] >= 1) & (positions[None] <= lengths[:, None])
    torch.manual_seed(0)
    matching = LocalMatching(D, aggregation, match_dim=8, relation_heads=2)
    _perturb_zero_initialised_layers(matching)

    features = patches.clone().requires_grad_()
    together = matching(features, words, word_mask)
    (together * torch.arange(together.numel(), dtype=torch.float32).view_as(together)).sum().backward()
    alone_grad = torch.zeros_like(patches)
    for j in range(reports):
        single = patches.clone().requires_grad_()
        column = matching(single, words[j : j + 1], word_mask[j : j + 1])
        assert torch.allclose(together[:, j : j + 1], column, rtol=1e-5, atol=1e-5), j
        (column[:, 0] * (torch.arange(3, dtype=torch.float32) * reports + j)).sum().backward()
        alone_grad += single.grad
    scale = features.grad.norm()
    assert scale > 0
    assert (features.grad - alone_grad).norm() <= 1e-5 * scale


def test_srm_and_irm_receive_gradients_and_srm_inner_layers_learn_after_one_step():
    patches, words, word_mask, _ = make_batch()
    torch.manual_seed(0)
    matching = LocalMatching(D, "reclf", match_dim=8, relation_heads=2)
    optimiser = torch.optim.SGD(matching.parameters(), lr=0.5)

    def step():
        optimiser.zero_grad()
        SymmetricInfoNCE()(matching(patches, words, word_mask) / 0.1).backward()

    step()
    # g (score correction) and the IRM output layer start at zero, but receive gradient at once.
    assert matching.srm.score_correction.weight.grad.abs().sum() > 0
    assert matching.irm.importance[-1].weight.grad.abs().sum() > 0
    srm_inner = [p for name, p in matching.srm.encoder.named_parameters() if "weight" in name]
    optimiser.step()
    step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in srm_inner)
    assert matching.irm.importance[0].weight.grad.abs().sum() > 0


def test_relation_modules_start_from_plain_mean_matching():
    patches, words, word_mask, _ = make_batch()
    mean = LocalMatching(D, "mean")(patches, words, word_mask)
    for aggregation in ("srm", "irm", "reclf"):
        relational = LocalMatching(D, aggregation, match_dim=8, relation_heads=2)(patches, words, word_mask)
        assert torch.allclose(relational, mean, atol=1e-6), aggregation


@pytest.mark.parametrize("aggregation", ["irm", "reclf"])
def test_score_importance_starts_as_irm_and_weighs_words_by_their_score(aggregation):
    """beta starts at 0 (the plain IRM, itself the `mean` matching at first); with beta > 0 and
    f still zero, alpha is softmax(beta * s~) over the report's words; beta gets a gradient at once."""
    patches, words, word_mask, _ = make_batch()
    torch.manual_seed(0)
    plain = LocalMatching(D, aggregation, match_dim=8, relation_heads=2)
    torch.manual_seed(0)
    scored = LocalMatching(D, aggregation, match_dim=8, relation_heads=2, score_importance=True)
    assert torch.equal(scored(patches, words, word_mask), plain(patches, words, word_mask))
    SymmetricInfoNCE()(scored(patches, words, word_mask) / 0.1).backward()
    assert scored.irm.score_gain.grad.abs() > 0
    with torch.no_grad():
        scored.irm.score_gain.fill_(5.0)
    details = scored.match_details(patches, words, word_mask)
    expected = masked_softmax(5.0 * details["token_scores"], word_mask.expand(B, B, T))
    assert torch.allclose(details["token_weights"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="aggregation 'srm' has no IRM"):
        LocalMatching(D, "srm", score_importance=True)


def test_fixed_importance_weights_are_the_renormalised_importance():
    patches, words, word_mask, importance = make_batch()
    details = LocalMatching(D, "fixed_importance").match_details(patches, words, word_mask, importance)
    expected = importance * word_mask / (importance * word_mask).sum(-1, keepdim=True)
    assert torch.allclose(details["token_weights"], expected.expand(B, B, T), atol=1e-6)
    with pytest.raises(ValueError, match="word_importance"):
        LocalMatching(D, "fixed_importance")(patches, words, word_mask)


def test_matching_scores_are_cosines_of_word_and_context():
    patches, words, word_mask, _ = make_batch()
    details = LocalMatching(D, "mean", attention_temperature=0.2).match_details(patches, words, word_mask)
    unit_patches, unit_words = F.normalize(patches, dim=-1), F.normalize(words, dim=-1)
    attention = torch.softmax(torch.einsum("jtd,ipd->ijtp", unit_words, unit_patches) / 0.2, dim=-1)
    context = torch.einsum("ijtp,ipd->ijtd", attention, unit_patches)
    cosine = F.cosine_similarity(context, unit_words[None].expand_as(context), dim=-1)
    assert torch.allclose(details["attention"][:, word_mask], attention[:, word_mask], atol=1e-6)
    assert torch.allclose(details["token_scores"][:, word_mask], cosine[:, word_mask], atol=1e-5)


def test_masked_softmax_gives_zeros_for_an_empty_row():
    logits = torch.randn(2, 4)
    mask = torch.tensor([[True, False, True, False], [False] * 4])
    weights = masked_softmax(logits, mask)
    assert torch.all(weights[1] == 0)
    assert torch.allclose(weights[0].sum(), torch.tensor(1.0))
    assert weights[0, 1] == weights[0, 3] == 0


def test_unknown_aggregation_is_rejected():
    with pytest.raises(ValueError, match="unknown local aggregation"):
        LocalMatching(D, "max")


def _perturb_zero_initialised_layers(matching):
    """Give SRM's g and IRM's output layer nonzero weights so the tests exercise them."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        if matching.srm is not None:
            matching.srm.score_correction.weight.normal_(generator=generator)
        if matching.irm is not None:
            matching.irm.importance[-1].weight.normal_(generator=generator)


@pytest.mark.parametrize("aggregation", ["srm", "reclf"])
def test_srm_corrections_are_what_it_adds_to_the_plain_word_scores(aggregation):
    """`token_corrections` (for inspecting SRM) is exactly s~ - s, where s is `mean`'s word score."""
    patches, words, word_mask, _ = make_batch()
    matching = LocalMatching(D, aggregation, match_dim=8, relation_heads=2).eval()
    _perturb_zero_initialised_layers(matching)
    with torch.no_grad():
        details = matching.match_details(patches, words, word_mask)
        plain = LocalMatching(D, "mean").match_details(patches, words, word_mask)
    corrections = details["token_corrections"]
    assert corrections[:, word_mask].abs().min() > 0 and torch.all(corrections[:, ~word_mask] == 0)
    assert torch.allclose(details["token_scores"] - corrections, plain["token_scores"], atol=1e-6)
    assert "token_corrections" not in plain


@pytest.mark.parametrize("aggregation", LOCAL_AGGREGATIONS)
def test_bf16_autocast_gives_finite_scores_and_gradients_with_padding_kept_out(aggregation):
    """What a CPU can show of mixed precision: large-norm features (lse uses them raw), an empty
    and a one-word report; scores and gradients stay finite, padding gets no weight and no gradient,
    and the scores stay near the float32 ones."""
    generator = torch.Generator().manual_seed(5)
    patches = 30 * torch.randn(B, P, D, generator=generator)
    words = 30 * torch.randn(B, T, D, generator=generator)
    lengths = torch.tensor([T - 2, 6, 1, 0])
    positions = torch.arange(T)
    word_mask = (positions[None] >= 1) & (positions[None] <= lengths[:, None])
    importance = torch.rand(B, T, generator=generator)
    torch.manual_seed(0)
    matching = LocalMatching(D, aggregation, match_dim=8, relation_heads=2)
    _perturb_zero_initialised_layers(matching)
    exact = matching(patches, words, word_mask, importance)

    features = [patches.clone().requires_grad_(), words.clone().requires_grad_()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = matching(*features, word_mask, importance).float()  # the training path
        details = matching.match_details(patches, words, word_mask, importance)
    F.cross_entropy(scores[:, :2].T, torch.arange(2)).backward()

    assert torch.isfinite(scores).all()
    assert all(torch.isfinite(feature.grad).all() for feature in features)
    assert torch.all(details["token_weights"][:, ~word_mask] == 0)
    assert torch.all(features[1].grad[~word_mask] == 0)
    assert torch.allclose(scores, exact, rtol=0.05, atol=0.05 * exact.abs().max().item())
