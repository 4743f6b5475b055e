"""Class-match retrieval over a whole evaluation set: the CheXpert 5x200 Precision@K protocol.

Every image is a query over the texts and every text a query over the images; a retrieved item is
relevant when its class equals the query's (:func:`~reclf_monai.metrics.class_precision_at_k`).
Pairs are scored with the model's own scorer (``RECLFModel.pair_logits``: global + local), as in
:class:`~reclf_monai.metrics.RetrievalMetric`, on every pair or on a global shortlist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced
from torch import nn

from reclf_monai.data.class_prompts import read_class_prompts
from reclf_monai.networks.reclf_model import check_scoring

from .contrastive_evaluation import concat_feature_batches, detached_features, encode_class_prompts, score_all_pairs
from .retrieval import class_precision_at_k
from .shortlist import check_shortlist_k

TEXT_SOURCES = ("reports", "prompts")


class ClassRetrievalMetric(Metric):
    """Image->text and text->image Precision@K by class match.

    Args:
        network: the RECLF model (or its DDP wrapper).
        class_names: the classes, in the order of the items' integer classes.
        text_source: where the texts come from:
            `reports`: each item's own report, of the item's class (IU-Phantom's zeroshot_5xN.json);
            the evaluator output must hold `image_features` and `text_features`.
            `prompts`: the class prompts in `prompts` (class name -> texts), a prompt being of the
            class it is listed under; for sets without reports such as CheXpert 5x200. The output
            holds `image_features` only. Image->text P@K can reach 1 only where every class has at
            least K prompts.
        prompts, tokenize: the class prompts (or the prompts file, read only for `prompts`) and a
            callable mapping ``{"report": text}`` to token ids (``TokenizeReportd``); `prompts` only.
        output_transform: evaluator output -> (features dict, integer classes (B,)).
        shortlist_k: None scores every pair exactly; k scores exactly only the global shortlist of
            k per image and per text (:func:`~reclf_monai.metrics.score_all_pairs`), exact for every
            P@K with K <= k.
        scoring: how a pair is scored, ``model`` or GLoRIA's ``gloria`` (``RECLFModel.pair_logits``).

    ``compute`` returns `i2t_P@K`, `t2i_P@K`, their mean `P@K` and `P_mean` (the mean of `P@K`
    over the Ks), cached until the next reset.
    """

    def __init__(
        self,
        network: nn.Module,
        class_names: Sequence[str],
        text_source: str = "reports",
        prompts: Optional[Mapping[str, Sequence[str]] | str | os.PathLike] = None,
        tokenize: Optional[Callable[[dict], dict]] = None,
        ks: Sequence[int] = (1, 5, 10),
        output_transform: Callable = lambda out: (out["pred"], out["label"]),
        device: Any = "cpu",
        shortlist_k: Optional[int] = None,
        scoring: str = "model",
    ):
        if text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}")
        if text_source != "prompts":
            prompts = None
        elif isinstance(prompts, (str, os.PathLike)):
            prompts = read_class_prompts(prompts, class_names)
        if text_source == "prompts":
            if prompts is None or tokenize is None:
                raise ValueError("text_source 'prompts' needs the class prompts and a tokenizer")
            missing = [name for name in class_names if not prompts.get(name)]
            if missing:
                raise ValueError(f"no prompts for classes {missing}; prompts cover {sorted(prompts)}")
        self.network = network
        self.class_names = list(class_names)
        self.text_source = text_source
        self.prompts = None if prompts is None else {name: list(prompts[name]) for name in self.class_names}
        self.tokenize = tokenize
        self.ks = tuple(ks)
        self.shortlist_k = check_shortlist_k(shortlist_k)
        self.scoring = check_scoring(scoring)
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._images: list[dict[str, torch.Tensor]] = []
        self._texts: list[dict[str, torch.Tensor]] = []
        self._classes: list[torch.Tensor] = []
        self._result: dict[str, float] | None = None

    @reinit__is_reduced
    def update(self, output: tuple[Mapping[str, Any], torch.Tensor]) -> None:
        features, classes = output
        has_reports = "text_features" in features
        if has_reports != (self.text_source == "reports"):
            found = "reports" if has_reports else "no reports"
            raise ValueError(f"text_source {self.text_source!r}, but the evaluator output holds {found}")
        classes = torch.as_tensor(classes).detach().cpu().view(-1).long()
        if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= len(self.class_names)):
            raise ValueError(f"classes must lie in [0, {len(self.class_names)}), got {classes.tolist()}")
        self._images.append(detached_features(features["image_features"]))
        if has_reports:
            self._texts.append(detached_features(features["text_features"]))
        self._classes.append(classes)
        self._result = None

    def compute(self) -> dict[str, float]:
        if not self._images:
            raise RuntimeError("ClassRetrievalMetric needs at least one batch before compute()")
        if self._result is None:
            image_classes = torch.cat(self._classes)
            if self.text_source == "reports":
                texts, text_classes = concat_feature_batches(self._texts), image_classes
            else:
                texts, text_classes = encode_class_prompts(self.network, self.prompts, self.class_names, self.tokenize)
            logits = score_all_pairs(self.network, concat_feature_batches(self._images), texts, shortlist_k=self.shortlist_k, scoring=self.scoring)
            self._result = class_retrieval_precision(logits, image_classes, text_classes, self.ks)
        return self._result


def class_retrieval_precision(
    logits: torch.Tensor, image_classes: torch.Tensor, text_classes: torch.Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """What :class:`ClassRetrievalMetric` reports for an (N_images, N_texts) score matrix: `i2t_P@K`,
    `t2i_P@K`, their mean `P@K` and `P_mean`; a function too, so tools can score a matrix they hold."""
    image_to_text = class_precision_at_k(logits, image_classes, text_classes, ks)
    text_to_image = class_precision_at_k(logits.T, text_classes, image_classes, ks)
    result = {}
    for k in ks:
        result[f"i2t_P@{k}"] = image_to_text[f"P@{k}"]
        result[f"t2i_P@{k}"] = text_to_image[f"P@{k}"]
        result[f"P@{k}"] = (result[f"i2t_P@{k}"] + result[f"t2i_P@{k}"]) / 2
    result["P_mean"] = sum(result[f"P@{k}"] for k in ks) / len(ks)
    return result
