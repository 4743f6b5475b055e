"""Ignite metrics that score a whole evaluation set with the model's own pair scorer.

Retrieval and zero-shot classification compare every image with every report (or class prompt),
which needs the features of the whole set, not per-batch outputs. These metrics accumulate the
features an evaluator produces and score all pairs at the end with
``RECLFModel.pair_logits`` (global cosine / tau_global + local S / tau_local), chunked over images.
Retrieval may score only a global shortlist exactly (`shortlist_k`, :mod:`.shortlist`); zero-shot
classification scores a handful of prompts, always exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced
from torch import nn
from tqdm import tqdm

from reclf_monai.data import TokenizeReportd, chest_xray_transforms
from reclf_monai.networks.reclf_model import check_scoring

from .retrieval import retrieval_recall_at_k
from .shortlist import check_shortlist_k, score_shortlisted_pairs
from .zero_shot import class_scores_from_prompts, standardise_classes, zero_shot_classification_metrics


def _unwrap(network: nn.Module) -> nn.Module:
    return getattr(network, "module", network)


def concat_feature_batches(batches: list[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One feature dict from per-batch feature dicts (each entry concatenated along the batch)."""
    return {key: torch.cat([batch[key] for batch in batches]) for key in batches[0]}


def detached_features(features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Plain CPU tensors: features of MONAI MetaTensor images are MetaTensors whose batch metadata
    cannot be sliced across batch boundaries once concatenated (``score_all_pairs`` chunks)."""
    return {
        key: value.detach().cpu().as_subclass(torch.Tensor) for key, value in features.items() if isinstance(value, torch.Tensor)
    }


@torch.no_grad()
def score_all_pairs(
    network: nn.Module,
    image_features: Mapping,
    text_features: Mapping,
    images_per_chunk: int = 64,
    shortlist_k: Optional[int] = None,
    scoring: str = "model",
) -> torch.Tensor:
    """(N_images, N_texts) combined logits on the CPU, computed on the network's device.

    `shortlist_k` None scores every pair exactly, in image chunks. A number k scores exactly only
    the pairs of the global shortlist (each image's k best texts and each text's k best images by
    the global term) and gives every other pair -inf (:mod:`.shortlist`); k at least the smaller
    of N_images and N_texts shortlists every pair, so that is the exact computation. `scoring`:
    see ``RECLFModel.pair_logits``. Exact scoring of more than one chunk shows a progress bar on
    stderr (thousands of images take minutes).
    """
    model = _unwrap(network)
    count = next(iter(image_features.values())).shape[0]
    text_count = next(iter(text_features.values())).shape[0]
    shortlist_k = check_shortlist_k(shortlist_k)
    if shortlist_k is not None and shortlist_k < min(count, text_count):
        return score_shortlisted_pairs(model, image_features, text_features, shortlist_k, scoring)
    device = next(model.parameters()).device
    texts = {key: value.to(device) for key, value in text_features.items()}
    rows = []
    description, single_chunk = f"scoring {count} x {text_count} pairs", count <= images_per_chunk
    with tqdm(total=count, desc=description, unit="img", mininterval=5.0, leave=False, disable=single_chunk) as bar:
        for start in range(0, count, images_per_chunk):
            chunk = {key: value[start : start + images_per_chunk].to(device) for key, value in image_features.items()}
            rows.append(model.pair_logits(chunk, texts, scoring).float().cpu())
            bar.update(rows[-1].shape[0])
    return torch.cat(rows)


@torch.no_grad()
def encode_class_prompts(
    network: nn.Module, prompts: Mapping[str, Sequence[str]], class_names: Sequence[str], tokenize: Callable[[dict], dict]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Text features (on the CPU) of every prompt of `class_names`, in class order, and each prompt's class index.

    `tokenize` maps ``{"report": text}`` to `input_ids` and `attention_mask` (e.g. ``TokenizeReportd``);
    the model encodes in eval mode and is left in the mode it was in.
    """
    texts, owners = [], []
    for index, name in enumerate(class_names):
        texts += list(prompts[name])
        owners += [index] * len(prompts[name])
    return encode_texts(network, texts, tokenize), torch.tensor(owners)


def encode_texts(network: nn.Module, texts: Sequence[str], tokenize: Callable[[dict], dict]) -> dict[str, torch.Tensor]:
    """Text features (on the CPU) of `texts`, in order; `tokenize` maps ``{"report": text}`` to
    `input_ids` and `attention_mask`. The model encodes in eval mode and is left in its mode."""
    model = _unwrap(network)
    device = next(model.parameters()).device
    tokens = [tokenize({"report": text}) for text in texts]
    input_ids = torch.stack([torch.as_tensor(t["input_ids"]) for t in tokens]).to(device)
    attention_mask = torch.stack([torch.as_tensor(t["attention_mask"]) for t in tokens]).to(device)
    was_training = model.training
    model.eval()
    features = model.encode_text(input_ids, attention_mask)
    model.train(was_training)
    return detached_features(features)


class RetrievalMetric(Metric):
    """Image<->report Recall@K over the whole evaluation set (image i belongs with report i and
    with every report of the same text: see :func:`~reclf_monai.metrics.retrieval_recall_at_k`).

    `output_transform` maps the evaluator output to (prediction, report groups): the prediction is
    the model's training output, which holds `image_features` and `text_features`; the report
    groups (B,) number identical reports alike (the bundles put
    :func:`reclf_monai.data.mark_duplicate_reports`'s `report_group` under `label`). ``compute``
    returns a dict (`i2t_R@K`, `t2i_R@K`, `R@K`, `R_mean`); ignite adds each key to
    ``engine.state.metrics``. The result is cached until the next reset, so a ``MetricsLambda`` on
    it (e.g. the key metric) costs nothing more. `shortlist_k`: None scores every pair exactly; k
    scores exactly only the global shortlist of k per image and per text (:func:`score_all_pairs`),
    which leaves every Recall@K with K <= k computed from exact scores among the candidates.
    `scoring`: how a pair is scored, ``model`` or GLoRIA's ``gloria`` (``RECLFModel.pair_logits``).
    """

    def __init__(
        self,
        network: nn.Module,
        ks: Sequence[int] = (1, 5, 10),
        output_transform: Callable = lambda out: (out["pred"], out["label"]),
        device: Any = "cpu",
        shortlist_k: Optional[int] = None,
        scoring: str = "model",
    ):
        self.network = network
        self.ks = tuple(ks)
        self.shortlist_k = check_shortlist_k(shortlist_k)
        self.scoring = check_scoring(scoring)
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._images: list[dict[str, torch.Tensor]] = []
        self._texts: list[dict[str, torch.Tensor]] = []
        self._groups: list[torch.Tensor] = []
        self._result: dict[str, float] | None = None

    @reinit__is_reduced
    def update(self, output: tuple[Mapping[str, Any], torch.Tensor]) -> None:
        prediction, report_groups = output
        if report_groups is None:
            raise ValueError(
                "RetrievalMetric needs each item's report group under the batch's `label` (identical reports count "
                "as matches): add `report_group` with reclf_monai.data.mark_duplicate_reports and copy it to `label`"
            )
        self._images.append(detached_features(prediction["image_features"]))
        self._texts.append(detached_features(prediction["text_features"]))
        self._groups.append(torch.as_tensor(report_groups).detach().cpu().view(-1))
        self._result = None

    def compute(self) -> dict[str, float]:
        if self._result is None:
            if not self._images:
                raise RuntimeError("RetrievalMetric needs at least one batch before compute()")
            logits = score_all_pairs(
                self.network, concat_feature_batches(self._images), concat_feature_batches(self._texts), shortlist_k=self.shortlist_k, scoring=self.scoring
            )
            result = retrieval_recall_at_k(logits, self.ks, torch.cat(self._groups))
            result["R_mean"] = sum(result[f"R@{k}"] for k in self.ks) / len(self.ks)
            self._result = result
        return self._result


class ZeroShotMetric(Metric):
    """Zero-shot classification: every image scored against every class's prompts.

    A class's score is the mean of the image's pair logits over that class's prompts (the same
    scorer as training, prompts taking the place of reports); with `scoring` ``gloria``, GLoRIA's
    zero-shot: its pair score (``RECLFModel.pair_logits``), the best of a class's prompts, and each
    class's scores standardised over the images. ``compute`` returns `auc` (macro,
    one-vs-rest), `acc` and `f1` (macro) of the argmax, cached until the next reset.

    Args:
        network: the RECLF model (or its DDP wrapper).
        prompts: class name -> list of prompt texts; class order = `class_names`.
        class_names: the order of the integer targets.
        tokenize: a callable mapping ``{"report": text}`` to a dict with `input_ids` and
            `attention_mask` (e.g. ``TokenizeReportd``).
        output_transform: evaluator output -> (image feature dict, integer targets).
        scoring: ``model`` or ``gloria`` (:data:`~reclf_monai.networks.reclf_model.SCORINGS`).
    """

    def __init__(
        self,
        network: nn.Module,
        prompts: Mapping[str, Sequence[str]],
        class_names: Sequence[str],
        tokenize: Callable[[dict], dict],
        output_transform: Callable = lambda out: (out["pred"], out["label"]),
        device: Any = "cpu",
        scoring: str = "model",
    ):
        missing = [name for name in class_names if not prompts.get(name)]
        if missing:
            raise ValueError(f"no prompts for classes {missing}; prompts cover {sorted(prompts)}")
        self.network = network
        self.class_names = list(class_names)
        self.prompts = {name: list(prompts[name]) for name in self.class_names}
        self.tokenize = tokenize
        self.scoring = check_scoring(scoring)
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._images: list[dict[str, torch.Tensor]] = []
        self._targets: list[torch.Tensor] = []
        self._result: dict[str, float] | None = None

    @reinit__is_reduced
    def update(self, output) -> None:
        features, targets = output
        self._images.append(detached_features(features))
        self._targets.append(torch.as_tensor(targets).detach().cpu().view(-1).long())
        self._result = None

    def prompt_features(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Text features of all prompts and the class index of each prompt."""
        return encode_class_prompts(self.network, self.prompts, self.class_names, self.tokenize)

    def class_scores(self) -> torch.Tensor:
        """(N_images, N_classes): each class's score from its prompts, as `scoring` pools them."""
        text_features, owners = self.prompt_features()
        pair_scores = score_all_pairs(self.network, concat_feature_batches(self._images), text_features, scoring=self.scoring)
        scores = class_scores_from_prompts(pair_scores, owners, len(self.class_names), self.scoring)
        return standardise_classes(scores) if self.scoring == "gloria" else scores

    def compute(self) -> dict[str, float]:
        if not self._images:
            raise RuntimeError("ZeroShotMetric needs at least one batch before compute()")
        if self._result is None:
            self._result = zero_shot_classification_metrics(self.class_scores(), torch.cat(self._targets))
        return self._result


@torch.no_grad()
def encode_pairs(network: nn.Module, items: Sequence[Mapping[str, Any]], batch_size: int = 32) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Image and report features (on the CPU) of datalist items (`image` path, `report` text), with
    the model's own image size, tokenizer and token length, for scripts that score outside a bundle.

    The images go through the evaluation transforms (``chest_xray_transforms`` without augmentation);
    the model should be in eval mode.
    """
    model = _unwrap(network)
    device = next(model.parameters()).device
    settings = model.settings
    load_image = chest_xray_transforms(image_size=settings["image_encoder"]["img_size"])
    tokenize = TokenizeReportd(tokenizer=settings["text_encoder"]["model_name_or_path"], max_length=settings["text_encoder"]["max_length"])
    image_batches, text_batches = [], []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        pixels = torch.stack([load_image({"image": item["image"]})["image"].as_tensor() for item in batch]).to(device)
        tokens = [tokenize({"report": item["report"]}) for item in batch]
        input_ids, attention_mask = (torch.stack([torch.as_tensor(t[key]) for t in tokens]).to(device) for key in ("input_ids", "attention_mask"))
        image_batches.append(detached_features(model.encode_image(pixels)))
        text_batches.append(detached_features(model.encode_text(input_ids, attention_mask)))
    return concat_feature_batches(image_batches), concat_feature_batches(text_batches)
