"""Each word's image context and its matching score, for every (image, word) of a block, in
memory that does not grow with the batch.

For images i (patch features v_ip, p = 1..P) and words t of reports j:

    G_jtip = w_jt . v_ip                                   (one matrix product for the block)
    a_jti  = attention of word t over the regions of image i (GLoRIA's or cosine, below)
    s_jti  = cos(w_jt, c_jti),  c_jti = sum_p a_jtip v_ip  (the word's image context)
    m_jti  = sum_p a_jtip v'_ip                            (its projection, for SRM/IRM)

c is never built: w . c = sum_p a G reuses the logits and |c|^2 = a^T (V V^T) a uses each image's
P x P Gram matrix. The block's largest tensors are (words x images x P); plain autograd would
keep five of them per block until the backward pass, so `WordContextScores` keeps only its
inputs and recomputes the block in its backward pass, with the derivatives written out below.
That costs a second forward pass (two of the five large matrix products) and makes training
memory one block's, whatever the batch.

Layout: words first, (m, L, n, P), so the products with the words and the patches of the whole
block are single matrix multiplications in the forward and the backward pass.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

# Smallest |c|^2 and |w||c| used in a division (GLoRIA clamps |w||c| at 1e-8 as well).
NORM_SQ_EPS = 1e-12
COS_EPS = 1e-8


class AttentionForm(NamedTuple):
    """How words attend to regions.

    `gloria_temp1` set: GLoRIA's attention on raw features, softmax over the report's words for
    each region, sharpened by temp1, then softmax over regions. None: cosine attention,
    softmax over regions of G / `temperature` (features already L2-normalised).
    """

    gloria_temp1: Optional[float]
    temperature: float


class BlockTerms(NamedTuple):
    """Forward quantities of one block, layout (m, L, n[, P])."""

    sims: torch.Tensor  # G
    word_softmax: Optional[torch.Tensor]  # GLoRIA's softmax over words (None for cosine attention)
    attention: torch.Tensor  # a
    attended_gram: torch.Tensor  # a Gram
    word_dot_context: torch.Tensor  # w . c
    context_norm_sq: torch.Tensor  # |c|^2
    denominator: torch.Tensor  # max(|w| |c|, COS_EPS)
    scores: torch.Tensor  # s


def block_terms(
    patches: torch.Tensor,
    gram: torch.Tensor,
    words: torch.Tensor,
    word_norm: torch.Tensor,
    word_mask: torch.Tensor,
    form: AttentionForm,
) -> BlockTerms:
    """patches (n, P, D), gram (n, P, P), words (m, L, D), word_norm and word_mask (m, L).

    Plain differentiable operations: the inference path and the reference for the hand-written
    backward pass of `WordContextScores`.
    """
    (n, regions, dim), (m, length, _) = patches.shape, words.shape
    sims = (words.reshape(m * length, dim) @ patches.reshape(n * regions, dim).T).view(m, length, n, regions)
    if form.gloria_temp1 is not None:
        words_only = sims.masked_fill(~word_mask[:, :, None, None], torch.finfo(sims.dtype).min)
        word_softmax = torch.softmax(words_only, dim=1)
        attention = torch.softmax(form.gloria_temp1 * word_softmax, dim=-1)
    else:
        word_softmax = None
        attention = torch.softmax(sims / form.temperature, dim=-1)
    attended_gram = _per_image_product(attention, gram)
    word_dot_context = (attention * sims).sum(-1)
    context_norm_sq = (attended_gram * attention).sum(-1)
    denominator = (word_norm[:, :, None] * context_norm_sq.clamp_min(NORM_SQ_EPS).sqrt()).clamp_min(COS_EPS)
    return BlockTerms(
        sims, word_softmax, attention, attended_gram, word_dot_context, context_norm_sq, denominator,
        word_dot_context / denominator,
    )


def _per_image_product(attention: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """(m, L, n, P) @ (n, P, Q) per image, written in the (m, L, n, Q) layout (one matrix product
    per image: as fast as a batched product here, and no transposed copy for what follows)."""
    product = attention.new_empty((*attention.shape[:3], matrices.shape[-1]))
    for image, matrix in enumerate(matrices):
        product[:, :, image] = attention[:, :, image] @ matrix
    return product


def _by_image(tensor: torch.Tensor) -> torch.Tensor:
    """(m, L, n, K) -> an (n, m*L, K) view, for batched products over images without a copy."""
    return tensor.flatten(0, 1).transpose(0, 1)


def projected_context(attention: torch.Tensor, patch_match: torch.Tensor) -> torch.Tensor:
    """m_jti = sum_p a_jtip v'_ip: (m, L, n, d_m) from attention (m, L, n, P) and v' (n, P, d_m).

    One batched product over images; the result's memory is image-major, the order the caller
    wants next (its (m, L, n, d_m) shape is a view)."""
    m, length = attention.shape[:2]
    return torch.bmm(_by_image(attention), patch_match).unflatten(1, (m, length)).movedim(0, 2)


class WordContextScores(torch.autograd.Function):
    """Scores s (m, L, n) and, given patch projections v' (n, P, d_m), projected contexts m
    (m, L, n, d_m); saves only the inputs and recomputes the block when gradients are needed."""

    @staticmethod
    def forward(ctx, patches, gram, words, word_norm, word_mask, patch_match, form: AttentionForm):
        terms = block_terms(patches, gram, words, word_norm, word_mask, form)
        contexts = None if patch_match is None else projected_context(terms.attention, patch_match)
        ctx.form = form
        device = patches.device.type  # the backward pass recomputes under the same autocast
        ctx.autocast = {
            "device_type": device, "enabled": torch.is_autocast_enabled(device), "dtype": torch.get_autocast_dtype(device)
        }
        ctx.save_for_backward(patches, gram, words, word_norm, word_mask, patch_match)
        return terms.scores, contexts

    @staticmethod
    def backward(ctx, grad_scores, grad_contexts):
        patches, gram, words, word_norm, word_mask, patch_match = ctx.saved_tensors
        form = ctx.form
        with torch.no_grad(), torch.autocast(**ctx.autocast):
            t = block_terms(patches, gram, words, word_norm, word_mask, form)
            (n, regions, dim), (m, length, _) = patches.shape, words.shape
            if grad_scores is None:
                grad_scores = torch.zeros_like(t.scores)
            # s = (w.c) / max(|w| sqrt(max(|c|^2, eps)), eps)
            grad_dot = grad_scores / t.denominator
            grad_denominator = -grad_scores * t.scores / t.denominator
            grad_denominator = grad_denominator * (t.denominator > COS_EPS)
            context_norm = t.context_norm_sq.clamp_min(NORM_SQ_EPS).sqrt()
            grad_word_norm = (grad_denominator * context_norm).sum(-1)
            grad_norm_sq = grad_denominator * word_norm[:, :, None] / (2 * context_norm)
            grad_norm_sq = grad_norm_sq * (t.context_norm_sq > NORM_SQ_EPS)

            # |c|^2 = a^T Gram a with Gram symmetric: d/da = 2 Gram a, d/dGram = a a^T.
            weighted = (t.attention * grad_norm_sq[..., None]).view(m * length, n, regions)
            attention = t.attention.view(m * length, n, regions)
            grad_gram = torch.stack([weighted[:, i].T @ attention[:, i] for i in range(n)])
            grad_attention = t.attended_gram.mul_(2 * grad_norm_sq[..., None])
            grad_attention.addcmul_(t.sims, grad_dot[..., None])
            grad_patch_match = None
            if patch_match is not None and grad_contexts is not None:
                grad_by_image = _by_image(grad_contexts)
                _by_image(grad_attention).baddbmm_(grad_by_image, patch_match.transpose(1, 2))
                grad_patch_match = torch.bmm(_by_image(t.attention).transpose(1, 2), grad_by_image)
            # softmax over regions: dz = a (da - sum_p a da)
            grad_logits = grad_attention.sub_((grad_attention * t.attention).sum(-1, keepdim=True)).mul_(t.attention)
            if form.gloria_temp1 is not None:
                # z = temp1 * softmax over the report's words (dim 1) of the masked G
                grad_softmax = grad_logits.mul_(form.gloria_temp1)
                inner = (grad_softmax * t.word_softmax).sum(1, keepdim=True)
                grad_sims = grad_softmax.sub_(inner).mul_(t.word_softmax)
                grad_sims.masked_fill_(~word_mask[:, :, None, None], 0)  # masked G never reached the softmax
            else:
                grad_sims = grad_logits.div_(form.temperature)
            grad_sims.addcmul_(t.attention, grad_dot[..., None])  # w.c = sum_p a G

            grad_sims = grad_sims.view(m * length, n * regions)
            grad_words = (grad_sims @ patches.reshape(n * regions, dim)).view(m, length, dim)
            grad_patches = (grad_sims.T @ words.reshape(m * length, dim)).view(n, regions, dim)
        return grad_patches, grad_gram, grad_words, grad_word_norm, None, grad_patch_match, None
