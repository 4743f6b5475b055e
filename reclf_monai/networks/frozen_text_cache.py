"""The output of a text encoder's frozen lower layers, kept per report for reports seen again.

Frozen layers run in eval mode (no dropout) with fixed weights, so what they give for a report
depends on its tokens alone: computed once, it serves every later epoch, and only the trained
layers above run again. Written here because neither transformers nor MONAI keeps a model's
intermediate outputs across training steps (MONAI's dataset caches hold transform outputs).
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

logger = logging.getLogger("reclf.text_cache")


class FrozenOutputCache:
    """A map from a report's token ids to the frozen layers' output for its tokens, (L, H),
    within `budget_mb` MiB: once full, later reports are not kept (each entry stays valid, so
    nothing is evicted); a line in the log says when."""

    def __init__(self, budget_mb: float):
        if budget_mb <= 0:
            raise ValueError(f"the cache budget must be positive, got {budget_mb} MiB")
        self.budget_bytes = int(budget_mb * 2**20)
        self.entries: dict[bytes, torch.Tensor] = {}
        self.stored_bytes = 0
        self.full = False

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def key(token_ids: torch.Tensor) -> bytes:
        """The key of one report: its token ids without padding, (L,)."""
        return token_ids.detach().cpu().numpy().tobytes()

    def get(self, key: bytes) -> Optional[torch.Tensor]:
        return self.entries.get(key)

    def put(self, key: bytes, output: torch.Tensor) -> None:
        """Keeps a copy of `output` (detached, so it holds no autograd graph) if it fits."""
        if self.full or key in self.entries:
            return
        size = output.numel() * output.element_size()
        if self.stored_bytes + size > self.budget_bytes:
            self.full = True
            logger.info(
                "frozen text layer cache full at %d reports (%.0f MiB); further reports run the frozen layers every time",
                len(self.entries), self.stored_bytes / 2**20,
            )
            return
        self.entries[key] = output.detach().clone()
        self.stored_bytes += size

    def clear(self) -> None:
        self.entries.clear()
        self.stored_bytes = 0
        self.full = False
