"""Zero-shot classification as a MONAI inferer: image batch in, one score per class out.

The network's own ``model(image)`` is the image embedding (what ``verify_net_in_out`` and
TorchScript export see); classifying needs the pretrained scorer against the class prompts too.
This inferer encodes the prompts once per network and scores every image of a batch against them
with ``RECLFModel.pair_logits`` (global and local), so the evaluator's output is an ordinary (B, C)
classification output that MONAI post-processing (``Activationsd``) and metrics take as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import torch
from monai.inferers import Inferer
from torch import nn

from reclf_monai.metrics.contrastive_evaluation import encode_class_prompts
from reclf_monai.metrics.zero_shot import class_scores_from_prompts
from reclf_monai.networks.checkpoints import unwrap
from reclf_monai.networks.reclf_model import check_scoring


class ZeroShotInferer(Inferer):
    """(B, C) class scores: each image's mean pair logit over each class's prompts, the same
    scores as :class:`~reclf_monai.metrics.ZeroShotMetric` (softmax them for probabilities). With
    `scoring` ``gloria``: GLoRIA's pair score and the best of a class's prompts; the
    standardisation over a set of images that GLoRIA applies next is the metric's (an inferer
    sees one batch).

    Args:
        prompts: class name -> prompt texts (e.g. from :func:`reclf_monai.data.read_class_prompts`).
        class_names: the order of the output columns; default: the order of `prompts`.
        tokenize: maps ``{"report": text}`` to `input_ids` and `attention_mask` (``TokenizeReportd``
            with the checkpoint's text encoder and `max_length`).
        scoring: ``model`` or ``gloria`` (``RECLFModel.pair_logits``).
    """

    def __init__(
        self,
        prompts: Mapping[str, Sequence[str]],
        tokenize: Callable[[dict], dict],
        class_names: Optional[Sequence[str]] = None,
        scoring: str = "model",
    ):
        super().__init__()
        self.scoring = check_scoring(scoring)
        self.class_names = list(prompts) if class_names is None else list(class_names)
        missing = [name for name in self.class_names if not prompts.get(name)]
        if missing:
            raise ValueError(f"no prompts for classes {missing}; prompts cover {sorted(prompts)}")
        self.prompts = {name: list(prompts[name]) for name in self.class_names}
        self.tokenize = tokenize
        self._encoded: Optional[tuple[nn.Module, dict[str, torch.Tensor], torch.Tensor]] = None

    def prompt_features(self, network: nn.Module) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Text features of every prompt (on the network's device) and each prompt's class index,
        encoded at the first call for `network` and kept (the weights do not change in inference)."""
        model = unwrap(network)
        if self._encoded is None or self._encoded[0] is not model:
            features, owners = encode_class_prompts(model, self.prompts, self.class_names, self.tokenize)
            device = next(model.parameters()).device
            self._encoded = (model, {key: value.to(device) for key, value in features.items()}, owners)
        return self._encoded[1], self._encoded[2]

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        model = unwrap(network)
        text_features, owners = self.prompt_features(model)
        scores = model.pair_logits(model.encode_image(inputs), text_features, self.scoring)
        return class_scores_from_prompts(scores.float(), owners, len(self.class_names), self.scoring)
