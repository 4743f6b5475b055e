"""The word-context block's hand-written backward pass (recomputation) against autograd."""

import pytest
import torch

from reclf_monai.networks.word_context import AttentionForm, WordContextScores, block_terms, projected_context

FORMS = {"gloria": AttentionForm(gloria_temp1=4.0, temperature=0.1), "cosine": AttentionForm(None, temperature=0.3)}


def small_block(seed=0):
    """Double-precision inputs: 3 images of 5 regions, reports of 5, 1 and 0 words after [CLS]."""
    generator = torch.Generator().manual_seed(seed)
    patches = torch.randn(3, 5, 4, dtype=torch.double, generator=generator)
    words = torch.randn(3, 6, 4, dtype=torch.double, generator=generator)
    patch_match = torch.randn(3, 5, 2, dtype=torch.double, generator=generator)
    word_mask = torch.zeros(3, 6, dtype=torch.bool)
    word_mask[0, 1:6] = True
    word_mask[1, 1] = True
    return patches, words, patch_match, word_mask


def scores_and_contexts(function, word_mask, form):
    def run(patches, words, patch_match):
        gram = patches @ patches.transpose(1, 2)
        return function(patches, gram, words, words.norm(dim=-1), word_mask, patch_match, form)

    return run


def with_autograd(patches, gram, words, word_norm, word_mask, patch_match, form):
    terms = block_terms(patches, gram, words, word_norm, word_mask, form)
    return terms.scores, projected_context(terms.attention, patch_match)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_recomputing_backward_passes_gradcheck(form):
    patches, words, patch_match, word_mask = small_block()
    inputs = tuple(tensor.requires_grad_() for tensor in (patches, words, patch_match))
    assert torch.autograd.gradcheck(scores_and_contexts(WordContextScores.apply, word_mask, form), inputs)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_recomputing_backward_equals_plain_autograd(form):
    generator = torch.Generator().manual_seed(1)
    results = []
    for function in (WordContextScores.apply, with_autograd):
        patches, words, patch_match, word_mask = small_block()
        inputs = [tensor.requires_grad_() for tensor in (patches, words, patch_match)]
        scores, contexts = scores_and_contexts(function, word_mask, form)(*inputs)
        generator.manual_seed(2)  # the same upstream gradients for both
        upstream = (torch.randn(scores.shape, dtype=torch.double, generator=generator),
                    torch.randn(contexts.shape, dtype=torch.double, generator=generator))
        torch.autograd.backward((scores, contexts), upstream)
        results.append([scores, contexts] + [tensor.grad for tensor in inputs])
    for mine, reference in zip(*results):
        assert reference.abs().max() > 0
        assert torch.allclose(mine, reference, rtol=1e-10, atol=1e-12)


def test_scores_alone_need_no_patch_projections():
    patches, words, _, word_mask = small_block()
    patches.requires_grad_()
    scores, contexts = scores_and_contexts(WordContextScores.apply, word_mask, FORMS["cosine"])(patches, words, None)
    assert contexts is None
    scores[word_mask[:, :, None].expand_as(scores)].sum().backward()
    assert torch.isfinite(patches.grad).all() and patches.grad.abs().max() > 0
