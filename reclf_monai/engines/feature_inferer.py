"""MONAI inferers that return the model's features instead of its training output.

``RECLFModel(image)`` returns only the normalised global image vector (what ``verify_net_in_out``
and TorchScript export see) and ``RECLFModel(image, input_ids, attention_mask)`` the training
logits. Zero-shot classification needs patch features of images alone, and embedding export
needs the global vectors of both modalities: these inferers ask the model for exactly that.
Both unwrap DistributedDataParallel.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from monai.inferers import Inferer
from torch import nn


class ImageFeatureInferer(Inferer):
    """``network.encode_image(inputs)``: patch and global image features."""

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return getattr(network, "module", network).encode_image(inputs)


class EmbeddingInferer(Inferer):
    """L2-normalised global embeddings: `image_embedding` and, given token ids, `report_embedding`."""

    def __call__(
        self,
        inputs: torch.Tensor,
        network: nn.Module,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
    ) -> dict[str, torch.Tensor]:
        model = getattr(network, "module", network)
        output = {"image_embedding": F.normalize(model.encode_image(inputs)["global"], dim=-1)}
        if input_ids is not None:
            output["report_embedding"] = F.normalize(model.encode_text(input_ids, attention_mask)["global"], dim=-1)
        return output
