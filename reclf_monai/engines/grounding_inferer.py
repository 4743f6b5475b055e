"""A MONAI inferer that returns phrase heatmaps instead of the network's forward output."""

from __future__ import annotations

from typing import Optional

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from torch import nn

from reclf_monai.networks.grounding import phrase_heatmap


class PhraseHeatmapInferer(Inferer):
    """(B, 1, H, W) heatmap of each image and its phrase (token ids as keyword arguments, e.g. from
    :class:`~reclf_monai.engines.PrepareOptionalReportBatch`), at the input's size; see
    :func:`reclf_monai.networks.grounding.phrase_heatmap`.

    The heatmaps are MetaTensors without metadata of their own: MONAI's ``Invertd`` then maps
    them back to each image file's size with the image's recorded transforms (it skips plain tensors).
    """

    def __call__(
        self,
        inputs: torch.Tensor,
        network: nn.Module,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if input_ids is None:
            raise ValueError("grounding needs a phrase for every image: the batch has no token ids")
        return MetaTensor(phrase_heatmap(network, inputs, input_ids, attention_mask))
