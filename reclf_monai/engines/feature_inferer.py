"""MONAI inferers and batch preparation that ask the model for features instead of its training output.

``RECLFModel(image)`` returns only the normalised global image vector (what ``verify_net_in_out``,
TorchScript export and image-embedding inference use; ``SimpleInferer`` suffices there) and
``RECLFModel(image, input_ids, attention_mask)`` the training logits. Zero-shot classification
needs patch features of images alone, report-embedding inference needs reports without images,
and whole-set retrieval needs the features of both: these pieces ask the model for exactly that.
All unwrap DistributedDataParallel.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from monai.engines import PrepareBatch
from monai.inferers import Inferer
from monai.utils import CommonKeys
from torch import nn

from reclf_monai.data.tokenization import ATTENTION_MASK_KEY, INPUT_IDS_KEY


class ImageFeatureInferer(Inferer):
    """``network.encode_image(inputs)``: patch and global image features."""

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return getattr(network, "module", network).encode_image(inputs)


class PairFeatureInferer(Inferer):
    """`image_features` (``encode_image``) and, when token ids are given, `text_features`
    (``encode_text``) of a batch: what the whole-set retrieval metrics score, without the B x B
    training logits that ``network(image, input_ids, attention_mask)`` would compute as well."""

    def __call__(
        self,
        inputs: torch.Tensor,
        network: nn.Module,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
    ) -> dict[str, dict[str, torch.Tensor]]:
        model = getattr(network, "module", network)
        output = {"image_features": model.encode_image(inputs)}
        if input_ids is not None:
            output["text_features"] = model.encode_text(input_ids, attention_mask)
        return output


class PrepareOptionalReportBatch(PrepareBatch):
    """Image batches, with the report's token ids as keyword arguments of the inferer when the batch
    has them (MONAI's ``PrepareBatchExtraInput`` requires them); `label` passed through when present."""

    def __call__(self, batchdata: dict[str, torch.Tensor], device=None, non_blocking: bool = False, **kwargs: Any):
        def to_device(value):
            return value.to(device=device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value

        extra = {key: to_device(batchdata[key]) for key in (INPUT_IDS_KEY, ATTENTION_MASK_KEY) if key in batchdata}
        return to_device(batchdata[CommonKeys.IMAGE]), to_device(batchdata.get(CommonKeys.LABEL)), (), extra


class PrepareReportBatch(PrepareBatch):
    """Batches of reports only: token ids as the evaluator's input, the attention mask as an extra
    argument of the inferer, `label` passed through when present (MONAI's default needs an image)."""

    def __call__(self, batchdata: dict[str, torch.Tensor], device=None, non_blocking: bool = False, **kwargs: Any):
        def to_device(value):
            return value.to(device=device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value

        attention_mask = to_device(batchdata[ATTENTION_MASK_KEY])
        return to_device(batchdata[INPUT_IDS_KEY]), to_device(batchdata.get(CommonKeys.LABEL)), (attention_mask,), {}


class ReportFeatureInferer(Inferer):
    """``network.encode_text(input_ids, attention_mask)``: token and global report features, word mask."""

    def __call__(self, input_ids: torch.Tensor, network: nn.Module, attention_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        return getattr(network, "module", network).encode_text(input_ids, attention_mask)


class ReportEmbeddingInferer(Inferer):
    """L2-normalised global report embeddings (B, D) from token ids and their attention mask."""

    def __call__(self, input_ids: torch.Tensor, network: nn.Module, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        model = getattr(network, "module", network)
        return F.normalize(model.encode_text(input_ids, attention_mask)["global"], dim=-1)
