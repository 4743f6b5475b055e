"""Scores of the relation probe (:mod:`reclf_monai.phantom.relation_probe`): does the model prefer
a report to its minimal edits, and a report's image to the image with the sides swapped?"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced
from torch import nn

from reclf_monai.networks.reclf_model import check_scoring
from reclf_monai.phantom.relation_probe import read_probe_cases

from .contrastive_evaluation import concat_feature_batches, detached_features, encode_texts, score_all_pairs

GROUPS = {"all": (1, 2), "one finding": (1,), "two findings": (2,)}


def preference(true_scores: torch.Tensor, edit_scores: torch.Tensor) -> float:
    """The share of pairs where the true side scores higher; a tie counts half."""
    return ((true_scores > edit_scores).float() + 0.5 * (true_scores == edit_scores).float()).mean().item()


def probe_texts(cases: Sequence[Mapping]) -> tuple[list[str], list[tuple[int, str]]]:
    """Every text of the probe's cases, in order, and each text's (case, kind): what
    :func:`relation_probe_scores` reads the score matrix's columns by."""
    texts, owners = [], []
    for case in cases:
        for kind in ("report", "sides swapped", "negated"):
            entries = case[kind] if isinstance(case[kind], list) else [case[kind]]
            texts += entries
            owners += [(case["case"], kind)] * len(entries)
    return texts, owners


def relation_probe_scores(scores: torch.Tensor, image_labels: torch.Tensor, cases: Sequence[Mapping], text_owners: list[tuple[int, str]]) -> dict:
    """The probe's shares from an (N_images, N_texts) score matrix.

    `image_labels` (N_images, 2) holds each image's [case, variant]; `text_owners` each text's
    (case, kind), kind ``report``, ``sides swapped`` or ``negated``. Flat keys (the metrics report
    keeps scalars), per group of cases (``all``, ``one finding``, ``two findings``):
    ``GROUP/image_to_text/EDIT`` per edit (over the images as reported),
    ``GROUP/text_to_image/sides swapped`` (over the reports) and ``GROUP/cases``;
    ``negated FINDING/image_to_text`` per finding class, over the edits that negate it (is a
    preference for negated reports the same for every finding, or stronger where the corpus
    mostly denies it?); and the headline `sides_swapped_two_findings`, the mean of the two
    side-swap shares over the two-finding cases (the pairing of disease and side that a bag of
    matchings cannot tell; NaN without such cases).
    """
    column = {}
    for index, (case, kind) in enumerate(text_owners):
        column.setdefault((case, kind), []).append(index)
    row = {(int(case), int(variant)): index for index, (case, variant) in enumerate(image_labels.tolist())}
    scored = []  # per case with its image scored: the true report's score against each edit's
    for case in cases:
        if (case["case"], 0) not in row:
            continue
        image, report = row[case["case"], 0], column[case["case"], "report"][0]
        mirrored = row.get((case["case"], 1))
        scored.append({
            "findings": len(case["findings"]), "true": scores[image, report],
            "sides swapped": scores[image, column[case["case"], "sides swapped"][0]],
            "negated": [(finding, scores[image, negation]) for (finding, _side), negation in zip(case["findings"], column[case["case"], "negated"])],
            "mirrored image": None if mirrored is None else scores[mirrored, report],
        })  # fmt: skip
    result = {}
    for group, sizes in GROUPS.items():
        chosen = [case for case in scored if case["findings"] in sizes and case["mirrored image"] is not None]
        if not chosen:
            continue
        true = torch.stack([case["true"] for case in chosen])
        negations = [(case["true"], edit) for case in chosen for _finding, edit in case["negated"]]
        result[f"{group}/image_to_text/sides swapped"] = preference(true, torch.stack([case["sides swapped"] for case in chosen]))
        result[f"{group}/image_to_text/negated"] = preference(*(torch.stack(side) for side in zip(*negations)))
        result[f"{group}/text_to_image/sides swapped"] = preference(true, torch.stack([case["mirrored image"] for case in chosen]))
        result[f"{group}/cases"] = len(chosen)
    by_finding: dict[str, list] = {}
    for case in scored:
        for finding, edit in case["negated"]:
            by_finding.setdefault(finding, []).append((case["true"], edit))
    for finding, negations in sorted(by_finding.items()):
        result[f"negated {finding}/image_to_text"] = preference(*(torch.stack(side) for side in zip(*negations)))
    pairs = [result.get(f"two findings/{direction}/sides swapped") for direction in ("image_to_text", "text_to_image")]
    return {"sides_swapped_two_findings": sum(pairs) / 2 if None not in pairs else float("nan"), **result}


class RelationProbeMetric(Metric):
    """The relation probe's shares over an evaluation of the probe's images.

    Args:
        network: the RECLF model (or its DDP wrapper).
        probe_file: the probe's ``relation_probe.json`` (its ``cases`` hold the texts).
        tokenize: maps ``{"report": text}`` to token ids (``TokenizeReportd``).
        output_transform: evaluator output -> (image features, labels (B, 2) of [case, variant]).
        scoring: how a pair is scored, ``model`` or GLoRIA's ``gloria`` (``RECLFModel.pair_logits``).

    ``compute`` returns :func:`relation_probe_scores`' result; chance is 0.5 everywhere. Every
    layout appears with its sides both ways round, so a model whose scores ignore how disease and
    side pair up (a bag of matchings) scores exactly 0.5 on the side swaps: what it prefers in
    one case it prefers in the mirrored one.
    """

    def __init__(
        self,
        network: nn.Module,
        probe_file: str | os.PathLike,
        tokenize: Callable[[dict], dict],
        output_transform: Callable = lambda out: (out["pred"], out["label"]),
        scoring: str = "model",
        device: Any = "cpu",
    ):
        self.network = network
        self.cases = read_probe_cases(probe_file)
        self.tokenize = tokenize
        self.scoring = check_scoring(scoring)
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._images: list[dict[str, torch.Tensor]] = []
        self._labels: list[torch.Tensor] = []

    @reinit__is_reduced
    def update(self, output: tuple[Mapping[str, torch.Tensor], torch.Tensor]) -> None:
        features, labels = output
        self._images.append(detached_features(features))
        self._labels.append(torch.as_tensor(labels).detach().cpu().long().view(-1, 2))

    def compute(self) -> dict:
        if not self._images:
            raise RuntimeError("RelationProbeMetric needs at least one batch before compute()")
        texts, owners = probe_texts(self.cases)
        text_features = encode_texts(self.network, texts, self.tokenize)
        scores = score_all_pairs(self.network, concat_feature_batches(self._images), text_features, scoring=self.scoring)
        return relation_probe_scores(scores, torch.cat(self._labels), self.cases, owners)
