"""A pretrained RECLF model in a few lines of Python: embeddings, zero-shot probabilities, phrase
heatmaps, word weights and report rankings, without a datalist or a bundle run.

    from reclf_monai.image_text_inference import ImageTextInference

    engine = ImageTextInference.from_checkpoint("demo_output/reclf_pretrain/models/model.pt")
    engine.zero_shot(["a.png", "b.dcm"], {"effusion": ["pleural effusion"], "normal": ["no acute findings"]})

Why here and not only in the bundles: notebook users (of GLoRIA's ``zero_shot_classification`` or
BioViL's ``ImageTextInferenceEngine``) score a handful of images without writing a datalist. The
results are the bundles' own: the same checkpoint loading (settings from the file, a file that does
not fit is an error), the same image transforms (``chest_xray_transforms`` at the checkpoint's
size), the same tokenizer and length, and the same scorers (``RECLFModel.pair_logits``, the
zero-shot inferer, the grounding heatmap mapped back to the image's own size).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from copy import deepcopy
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from reclf_monai.data.image_loading import chest_xray_transforms
from reclf_monai.data.tokenization import TokenizeReportd
from reclf_monai.engines.zero_shot_inferer import ZeroShotInferer
from reclf_monai.handlers.word_heatmaps import ReportWord, report_word_attention
from reclf_monai.metrics.contrastive_evaluation import concat_feature_batches, detached_features, encode_texts, score_all_pairs
from reclf_monai.networks.grounding import phrase_heatmap
from reclf_monai.networks.reclf_model import RECLFModel

# A path (PNG, JPEG, DICOM, NIfTI: what the bundles read) or the image itself, (H, W) or (1, H, W).
ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]
BUNDLE_CHECKPOINT = os.path.join("models", "model.pt")


class ImageTextInference:
    """Score images and texts with a pretrained RECLF model, as the bundles do.

    Args:
        model: a :class:`~reclf_monai.networks.RECLFModel` with its weights.
        device: where to compute (default: CUDA when available, else the CPU).
        batch_size: images or texts encoded at once.
    """

    def __init__(self, model: RECLFModel, device: Optional[Union[str, torch.device]] = None, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        image_size = model.settings["image_encoder"]["img_size"]
        self.transforms = {load: chest_xray_transforms("image", image_size=image_size, load=load) for load in (True, False)}
        text = model.settings["text_encoder"]
        self.tokenize = TokenizeReportd(tokenizer=text["model_name_or_path"], max_length=text["max_length"])

    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike], **kwargs: Any) -> "ImageTextInference":
        """From a reclf_pretrain checkpoint (``models/model.pt`` or ``checkpoint_epoch=E.pt``)."""
        return cls(RECLFModel.from_checkpoint(path), **kwargs)

    @classmethod
    def from_bundle(cls, folder: Union[str, os.PathLike], **kwargs: Any) -> "ImageTextInference":
        """From a bundle folder holding the pretrained weights as ``models/model.pt`` (a trained or
        downloaded ``reclf_pretrain``)."""
        path = os.path.join(folder, BUNDLE_CHECKPOINT)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no pretrained weights in the bundle folder {folder} (expected {BUNDLE_CHECKPOINT})")
        return cls.from_checkpoint(path, **kwargs)

    def prepare_image(self, image: ImageInput) -> MetaTensor:
        """(1, S, S): the bundles' transforms on a file, or on an image given as an array."""
        if isinstance(image, (str, os.PathLike)):
            return self.transforms[True]({"image": os.fspath(image)})["image"]
        array = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image, dtype=torch.float32)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or array.shape[0] != 1:
            raise ValueError(f"an image array must be (H, W) or (1, H, W), got shape {tuple(array.shape)}")
        return self.transforms[False]({"image": MetaTensor(array)})["image"]

    def _image_batches(self, images: Iterable[ImageInput]) -> Iterable[torch.Tensor]:
        images = list(images)
        for start in range(0, len(images), self.batch_size):
            batch = [self.prepare_image(image).as_tensor() for image in images[start : start + self.batch_size]]
            yield torch.stack(batch).to(self.device)

    @torch.no_grad()
    def image_features(self, images: Iterable[ImageInput]) -> dict[str, torch.Tensor]:
        """The model's image features (patches and global vector), on the CPU, in order."""
        return concat_feature_batches([detached_features(self.model.encode_image(batch)) for batch in self._image_batches(images)])

    @torch.no_grad()
    def report_features(self, reports: Sequence[str]) -> dict[str, torch.Tensor]:
        """The model's text features (tokens, word mask, global vector), on the CPU, in order."""
        return concat_feature_batches(
            [encode_texts(self.model, reports[start : start + self.batch_size], self.tokenize) for start in range(0, len(reports), self.batch_size)]
        )

    @torch.no_grad()
    def embed_images(self, images: Iterable[ImageInput]) -> torch.Tensor:
        """(N, D) L2-normalised global image embeddings: what reclf_pretrain's inference.json writes."""
        return torch.cat([self.model(batch).cpu() for batch in self._image_batches(images)])

    def embed_reports(self, reports: Sequence[str]) -> torch.Tensor:
        """(N, D) L2-normalised global report embeddings: what reclf_pretrain's inference.json writes."""
        return F.normalize(self.report_features(list(reports))["global"], dim=-1)

    @torch.no_grad()
    def zero_shot(
        self, images: Iterable[ImageInput], prompts: Mapping[str, Sequence[str]], scoring: str = "model"
    ) -> torch.Tensor:
        """(N, C) class probabilities, classes in the order of `prompts` (class -> prompt texts):
        the softmax of each image's mean pair logit over a class's prompts, as the zero-shot
        bundle's ``class_probabilities.csv``. `scoring` ``gloria``: GLoRIA's score (see the bundle)."""
        inferer = ZeroShotInferer(prompts, self.tokenize, scoring=scoring)
        return torch.cat([torch.softmax(inferer(batch, self.model), dim=1).cpu() for batch in self._image_batches(images)])

    def similarity_map(self, image: ImageInput, phrase: str) -> np.ndarray:
        """(H, W) heatmap of where `phrase` matches `image`, at the image's own size: the grounding
        bundle's heatmap (IRM-weighted word-to-region attention, upsampled, mapped back through the
        resize and padding). Needs a local scorer (not ``global_only``)."""
        if self.model.local_matching is None:
            raise ValueError("similarity maps need a local scorer; this checkpoint is global_only")
        prepared = self.prepare_image(image)
        tokens = self.tokenize({"report": phrase})
        heatmap = phrase_heatmap(
            self.model,
            prepared.as_tensor()[None].to(self.device),
            tokens["input_ids"][None].to(self.device),
            tokens["attention_mask"][None].to(self.device),
        )[0].cpu()
        # map back through the recorded resize and padding, as the bundle's Invertd does
        restored = MetaTensor(heatmap, meta=deepcopy(prepared.meta), applied_operations=deepcopy(prepared.applied_operations))
        load = isinstance(image, (str, os.PathLike))
        return np.asarray(self.transforms[load].inverse({"image": restored})["image"].as_tensor()[0])

    @torch.no_grad()
    def word_weights(self, image: ImageInput, report: str) -> list[ReportWord]:
        """The report's whole words in reading order, each with the local scorer's weight alpha for
        this image (IRM's importance for ``irm``/``reclf``; they sum to 1 over the words): what
        pretraining's TensorBoard chart shows. Needs a local scorer (not ``global_only``)."""
        if self.model.local_matching is None:
            raise ValueError("word weights need a local scorer; this checkpoint is global_only")
        tokens = self.tokenize({"report": report})
        image = self.prepare_image(image).as_tensor()[None].to(self.device)
        input_ids, attention_mask = tokens["input_ids"][None].to(self.device), tokens["attention_mask"][None].to(self.device)
        words, _, _ = report_word_attention(self.model, image, input_ids, attention_mask, self.tokenize.tokenizer)
        return words

    def rank_reports(self, images: Iterable[ImageInput], reports: Sequence[str], top_k: int = 5) -> list[list[tuple[int, float]]]:
        """For each image, the `top_k` of `reports` with the highest pair score (global and local,
        ``RECLFModel.pair_logits``), as (report index, score), best first: the retrieval bundle's ranking."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        scores = score_all_pairs(self.model, self.image_features(images), self.report_features(list(reports)))
        best = scores.topk(min(top_k, scores.shape[1]), dim=1)
        return [list(zip(columns, values)) for columns, values in zip(best.indices.tolist(), best.values.tolist())]
