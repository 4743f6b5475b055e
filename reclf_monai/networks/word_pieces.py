"""Whole words from word pieces, as GLoRIA and MGCA match them.

A WordPiece tokenizer splits "cardiomegaly" into "cardio", "##me", "##gal", "##y"; GLoRIA sums the
pieces' features into one feature per word before local matching, so a finding is one matching,
not four (``BertEncoder.aggregate_tokens``). Special tokens ([CLS], [SEP]) are words of their own.
Here that is done with tensor operations on the whole batch instead of GLoRIA's per-token Python
loop; the words of a report keep their order and fill the first slots, the rest is padding.
"""

from __future__ import annotations

import torch


def word_slots(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, continuation_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) the word slot of every token (-1 at padding) and (B,) the number of words: a token
    starts a new word unless its id is one of `continuation_ids` (the ``##`` pieces)."""
    real = attention_mask.bool()
    starts = real & ~torch.isin(input_ids, continuation_ids)
    slots = (starts.long().cumsum(dim=1) - 1).clamp_min(0)
    return torch.where(real, slots, torch.full_like(slots, -1)), starts.sum(dim=1)


def sum_into_words(values: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """`values` (B, T, ...) of tokens summed per word slot (B, T, ...); padding slots hold 0."""
    shape = (*slots.shape, *([1] * (values.dim() - 2)))
    real = (slots >= 0).view(shape).to(values.dtype)
    index = slots.clamp_min(0).view(shape).expand_as(values)
    return torch.zeros_like(values).scatter_add(1, index, values * real)


def first_piece_ids(input_ids: torch.Tensor, slots: torch.Tensor, word_counts: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) the token id of each word's first piece ([CLS], [SEP] for those words), `pad_id` in
    the slots after the last word."""
    batch, length = input_ids.shape
    is_start = torch.zeros_like(slots, dtype=torch.bool)
    is_start[:, 1:] = slots[:, 1:] != slots[:, :-1]
    is_start[:, 0] = slots[:, 0] >= 0
    target = torch.where(is_start & (slots >= 0), slots, torch.full_like(slots, length))  # column `length`: discarded
    first = torch.full((batch, length + 1), pad_id, dtype=input_ids.dtype, device=input_ids.device)
    first.scatter_(1, target, input_ids)
    first = first[:, :length]
    return torch.where(
        torch.arange(length, device=input_ids.device) < word_counts[:, None], first, torch.full_like(first, pad_id)
    )
