"""The reclf_retrieval bundle: class-match Precision@K and exact-pair Recall@K metrics against
hand-computed cases, and every workflow through MONAI's bundle CLI on a tiny IU-Phantom with a
tiny pretraining checkpoint (64-pixel images, 32-d embeddings). The checks it shares with the other
task bundles (metadata, MONAI's properties, the untrained baseline, export) are in
test_task_bundles.py."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from bundle_testing import BUNDLES, pretrained_workflow, run_pretrained_bundle, succeeded, trained_model
from monai.bundle import ConfigWorkflow
from sample_files import real_chest_dicom
from torch import nn

from reclf_monai.data import (
    DataError,
    TokenizeReportd,
    chest_xray_transforms,
    load_datalist,
    mark_duplicate_reports,
    write_datalist,
)
from reclf_monai.data.preparation.chexpert import COMPETITION_CLASSES, FIVE_BY_200_DATALIST
from reclf_monai.data.preparation.mimic_cxr import DATALIST_NAME, prepare_mimic_cxr
from reclf_monai.metrics import ClassRetrievalMetric, class_precision_at_k, encode_pairs, retrieval_recall_at_k, score_all_pairs
from reclf_monai.networks import RECLFModel

pytestmark = pytest.mark.end_to_end

BUNDLE = BUNDLES / "reclf_retrieval"
CHEXPERT_PROMPTS = BUNDLE / "prompts" / "chexpert_5x200.json"
IMAGE_SIZE = 64


# ------------------------------------------------------------------ metrics, by hand


class DotScorer(nn.Module):
    """A stand-in model whose pair score is the dot product of `global` features; prompt `i`
    (token id i) has the text feature ``prompt_vectors[i]``."""

    def __init__(self, prompt_vectors: torch.Tensor | None = None):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # score_all_pairs reads the device from a parameter
        self.prompt_vectors = prompt_vectors

    def pair_logits(self, image_features, text_features, scoring="model"):
        return image_features["global"] @ text_features["global"].T

    def encode_text(self, input_ids, attention_mask=None):
        return {"global": self.prompt_vectors[input_ids[:, 0]]}


# rows: images of classes 0, 0, 1, 1; columns: their reports, same classes
SIMILARITY = torch.tensor(
    [
        [0.9, 0.1, 0.8, 0.2],  # ranks reports 0 2 3 1: classes 0 1 1 0
        [0.3, 0.4, 0.5, 0.6],  # 3 2 1 0: 1 1 0 0
        [0.7, 0.2, 0.1, 0.3],  # 0 3 1 2: 0 1 0 1
        [0.1, 0.25, 0.6, 0.5],  # 2 3 1 0: 1 1 0 0
    ]
)
CLASSES = torch.tensor([0, 0, 1, 1])


def test_class_precision_by_hand():
    # image queries: P@1 = (1 + 0 + 0 + 1) / 4; P@2 = (1/2 + 0 + 1/2 + 1) / 4; P@3 = (1/3 + 1/3 + 1/3 + 2/3) / 4
    expected = {"P@1": 0.5, "P@2": 0.5, "P@3": 5 / 12}
    assert class_precision_at_k(SIMILARITY, CLASSES, CLASSES, ks=(1, 2, 3)) == pytest.approx(expected)
    # report queries rank images by columns: 0 2 1 3 | 1 3 2 0 | 0 3 1 2 | 1 3 2 0
    # classes:                                0 1 0 1 | 0 1 1 0 | 0 1 0 1 | 0 1 1 0
    expected = {"P@1": 0.5, "P@2": 0.5, "P@3": (2 / 3 + 1 / 3 + 1 / 3 + 2 / 3) / 4}
    assert class_precision_at_k(SIMILARITY.T, CLASSES, CLASSES, ks=(1, 2, 3)) == pytest.approx(expected)


def test_class_retrieval_metric_with_the_items_reports():
    metric = ClassRetrievalMetric(DotScorer(), ["a", "b"], ks=(1, 3))
    # image i has global row SIMILARITY[i], report j the unit vector e_j: the scores are SIMILARITY
    for rows in (slice(0, 3), slice(3, 4)):  # two batches
        features = {"image_features": {"global": SIMILARITY[rows]}, "text_features": {"global": torch.eye(4)[rows]}}
        metric.update((features, CLASSES[rows]))
    result = metric.compute()
    assert result == pytest.approx(
        {
            "i2t_P@1": 0.5, "t2i_P@1": 0.5, "P@1": 0.5,
            "i2t_P@3": 5 / 12, "t2i_P@3": 0.5, "P@3": 11 / 24,
            "P_mean": (0.5 + 11 / 24) / 2,
        }
    )  # fmt: skip


def test_class_retrieval_metric_with_class_prompts():
    # prompts 0 ("a"), 1 and 2 ("b"); three images of classes a, b, b
    prompt_vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    images = torch.tensor([[0.2, 0.5], [0.0, 0.9], [1.0, 0.1]])
    # scores (image x prompt): [[0.2, 0.5, 0.52], [0.0, 0.9, 0.72], [1.0, 0.1, 0.68]]
    prompt_ids = {"a": 0, "b one": 1, "b two": 2}

    def tokenize(item):
        return {"input_ids": torch.tensor([prompt_ids[item["report"]]]), "attention_mask": torch.ones(1, dtype=torch.long)}

    metric = ClassRetrievalMetric(
        DotScorer(prompt_vectors), ["a", "b"], text_source="prompts", prompts={"a": ["a"], "b": ["b one", "b two"]},
        tokenize=tokenize, ks=(1, 2),
    )  # fmt: skip
    metric.update(({"image_features": {"global": images}}, torch.tensor([0, 1, 1])))
    result = metric.compute()
    # image queries (classes a b b) rank prompts 2 1 0 (b b a) | 1 2 0 (b b a) | 0 2 1 (a b b):
    #   P@1 = (0 + 1 + 0) / 3, P@2 = (0 + 1 + 1/2) / 3
    # prompt queries (classes a b b) rank images 2 0 1 (b a b) | 1 0 2 (b a b) | 1 2 0 (b b a):
    #   P@1 = (0 + 1 + 1) / 3, P@2 = (1/2 + 1/2 + 1) / 3
    assert result["i2t_P@1"] == pytest.approx(1 / 3) and result["i2t_P@2"] == pytest.approx(0.5)
    assert result["t2i_P@1"] == pytest.approx(2 / 3) and result["t2i_P@2"] == pytest.approx(2 / 3)


def test_class_retrieval_metric_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="text_source must be one of"):
        ClassRetrievalMetric(DotScorer(), ["a"], text_source="report")
    with pytest.raises(ValueError, match=r"no prompts for classes \['b'\]"):
        ClassRetrievalMetric(DotScorer(), ["a", "b"], text_source="prompts", prompts={"a": ["x"]}, tokenize=dict)
    metric = ClassRetrievalMetric(DotScorer(), ["a", "b"])
    with pytest.raises(ValueError, match="text_source 'reports', but the evaluator output holds no reports"):
        metric.update(({"image_features": {"global": torch.ones(1, 2)}}, torch.tensor([0])))
    with pytest.raises(ValueError, match=r"classes must lie in \[0, 2\)"):
        metric.update(({"image_features": {"global": torch.ones(1, 2)}, "text_features": {"global": torch.ones(1, 2)}}, torch.tensor([2])))


def test_chexpert_prompts_cover_the_five_classes():
    prompts = json.loads(CHEXPERT_PROMPTS.read_text())
    assert tuple(prompts) == COMPETITION_CLASSES
    # ten distinct prompts per class, so that image->text P@10 can reach 1
    assert all(len(set(texts)) == len(texts) == 10 for texts in prompts.values())


# ------------------------------------------------------------------ the bundle


# bundle_testing's runs of a bundle on a pretraining checkpoint, for this bundle
run_bundle = partial(run_pretrained_bundle, BUNDLE)
workflow = partial(pretrained_workflow, BUNDLE)


@torch.no_grad()
def all_pair_scores(model: RECLFModel, items: list[dict], image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """The pretrained scorer on every (image, report) pair of `items`, computed here without the bundle."""
    images = chest_xray_transforms(image_size=image_size)
    tokenize = TokenizeReportd(max_length=48)
    pixels = torch.stack([images({"image": item["image"]})["image"].as_tensor() for item in items])
    tokens = [tokenize({"report": item["report"]}) for item in items]
    texts = model.encode_text(torch.stack([t["input_ids"] for t in tokens]), torch.stack([t["attention_mask"] for t in tokens]))
    return score_all_pairs(model, model.encode_image(pixels), texts)


def test_from_checkpoint_and_encode_pairs_score_as_the_hand_built_model(corpus, checkpoint):
    # what the scripts (word_weights, benchmark_shortlist) score with: the checkpoint's own network,
    # image size and tokenizer, in batches that do not divide the items
    model = RECLFModel.from_checkpoint(checkpoint)
    assert not model.training
    items = load_datalist(corpus / "zeroshot_5xN.json", "test")
    assert len(items) % 2 == 1
    image_features, text_features = encode_pairs(model, items, batch_size=2)
    assert image_features["global"].shape[0] == text_features["global"].shape[0] == len(items)
    torch.testing.assert_close(score_all_pairs(model, image_features, text_features), all_pair_scores(trained_model(checkpoint), items))


def test_evaluate_scores_every_pair_with_the_pretrained_scorer(corpus, checkpoint, tmp_path):
    # the test split with a twin report (as in IU, where a quarter of the reports have one), to test the rule
    pairs = load_datalist(corpus / "datalist.json", "test")
    pairs[5]["report"] = pairs[0]["report"]
    write_datalist(tmp_path / "twins.json", {"test": pairs})
    result = run_bundle(tmp_path, corpus, checkpoint, "inference", "evaluate", pair_datalist=tmp_path / "twins.json")
    assert succeeded(result)
    assert not list(tmp_path.rglob("events.out.tfevents.*"))  # evaluation only: no TensorBoard (docs/tensorboard.md)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "class_retrieval: P@1=" in result.stdout and "pair_retrieval: R@1=" in result.stdout

    model = trained_model(checkpoint)
    zero_shot = load_datalist(corpus / "zeroshot_5xN.json", "test")
    classes = torch.tensor([item["target"] for item in zero_shot])
    scores = all_pair_scores(model, zero_shot)
    for direction, matrix in (("i2t", scores), ("t2i", scores.T)):
        for name, value in class_precision_at_k(matrix, classes, classes).items():
            assert metrics["class_retrieval"][f"{direction}_{name}"] == pytest.approx(value, abs=1e-6), (direction, name)

    groups = [item["report_group"] for item in mark_duplicate_reports(pairs)]
    assert groups[5] == groups[0] == 0 and len(set(groups)) == len(groups) - 1
    scores = all_pair_scores(model, pairs)
    expected = retrieval_recall_at_k(scores, report_groups=groups)
    assert expected != retrieval_recall_at_k(scores), "the twin should change the figures, or this test tests nothing"
    for name, value in expected.items():
        assert metrics["pair_retrieval"][name] == pytest.approx(value, abs=1e-6), name


@pytest.fixture
def real_data_formats(corpus, mimic, tmp_path) -> SimpleNamespace:
    """CheXpert 5x200 as scripts/prepare_chexpert.py writes it (class index, no report; the images
    here are phantom PNGs) and MIMIC-CXR-JPG's test split written by prepare_mimic_cxr from the
    fixture layout of its tests."""
    data = tmp_path / "data"
    images = sorted((corpus / "images").glob("*.png"))[:10]
    five_by_n = [{"image": str(image), "target": index % 5} for index, image in enumerate(images)]
    write_datalist(data / FIVE_BY_200_DATALIST, {"test": five_by_n}, class_names=list(COMPETITION_CLASSES))
    prepare_mimic_cxr(mimic, data)
    return SimpleNamespace(chexpert=data / FIVE_BY_200_DATALIST, mimic=data / DATALIST_NAME)


def test_evaluate_on_chexpert_5x200_with_prompts_and_on_mimic_test(real_data_formats, corpus, checkpoint, tmp_path):
    result = run_bundle(
        tmp_path, corpus, checkpoint, "inference", "evaluate",
        class_datalist=real_data_formats.chexpert, text_source="prompts", prompts_file=CHEXPERT_PROMPTS,
        pair_datalist=real_data_formats.mimic,
    )  # fmt: skip
    assert succeeded(result)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["class_retrieval"]) >= {"i2t_P@1", "t2i_P@10", "P_mean"}
    assert all(0 <= value <= 1 for value in metrics["class_retrieval"].values())
    # the fixture's MIMIC test split: two studies with different reports
    assert len(load_datalist(real_data_formats.mimic, "test")) == 2
    assert all(0 <= value <= 1 for value in metrics["pair_retrieval"].values())
    assert metrics["pair_retrieval"]["R@10"] == 1.0  # K above the set size finds everything


def test_inference_ranks_each_images_reports(corpus, checkpoint, tmp_path):
    """inference.json alone: a real DICOM without a report, a report without an image, two pairs."""
    test_items = load_datalist(corpus / "datalist.json", "test")
    items = [{"image": str(real_chest_dicom())}, {"report": test_items[0]["report"]}, *test_items[1:3]]
    datalist = tmp_path / "mixed.json"
    datalist.write_text(json.dumps({"test": items}))
    result = run_bundle(tmp_path, corpus, checkpoint, "inference", infer_datalist=datalist, top_k=5, shortlist_k=2)
    assert succeeded(result)
    rankings = json.loads((tmp_path / "eval" / "rankings_test.json").read_text())
    assert rankings["top_k"] == 5 and rankings["shortlist_k"] == 5  # the shortlist widened to top_k: here every pair
    assert [entry["item"] for entry in rankings["images"]] == [0, 2, 3]
    assert [Path(entry["image"]) for entry in rankings["images"]] == [real_chest_dicom(), *(Path(item["image"]) for item in test_items[1:3])]
    model = trained_model(checkpoint)
    scores = all_pair_scores(model, [{**item, "report": items[1]["report"]} for item in items[2:]])  # paired images x report of item 1
    for entry in rankings["images"]:
        listed = entry["reports"]
        assert sorted(report["item"] for report in listed) == [1, 2, 3]  # fewer reports than top_k: all of them
        assert [report["score"] for report in listed] == sorted((report["score"] for report in listed), reverse=True)
        assert all(report["report"] == items[report["item"]]["report"] for report in listed)
    for row, entry in enumerate(rankings["images"][1:]):
        score_of_item_1 = next(report["score"] for report in entry["reports"] if report["item"] == 1)
        assert score_of_item_1 == pytest.approx(scores[row, 0].item(), abs=1e-4)


def test_one_protocol_alone(corpus, checkpoint, tmp_path):
    """`run_pair_retrieval` builds and runs only the exact-pair section: the class section's
    datalist need not exist (in this process: the CLI passes the run id the same way)."""
    flow = workflow(corpus, checkpoint, tmp_path, "inference", "evaluate", run_id="run_pair_retrieval", class_datalist=str(tmp_path / "absent.json"))
    flow.initialize()
    flow.run()
    assert list(json.loads((tmp_path / "eval" / "metrics.json").read_text())) == ["pair_retrieval"]


def network_error(flow: ConfigWorkflow) -> BaseException:
    """The error that building the network raises (MONAI wraps it in a RuntimeError)."""
    with pytest.raises(RuntimeError) as raised:
        flow.parser.get_parsed_content("network")
    return raised.value.__cause__


def test_a_missing_or_foreign_checkpoint_is_an_error_naming_it(corpus, checkpoint, tmp_path):
    error = network_error(workflow(corpus, tmp_path / "absent.pt", tmp_path, "inference"))
    assert isinstance(error, DataError) and "absent.pt: checkpoint file not found" in str(error)
    foreign = tmp_path / "classifier.pt"
    torch.save({"model": {}, "network_settings": {"num_classes": 3}}, foreign)
    error = network_error(workflow(corpus, foreign, tmp_path, "inference"))
    assert isinstance(error, DataError) and "classifier.pt: not a RECLF pretraining checkpoint" in str(error)
    # `--pretrained_checkpoint none` (MONAI's CLI drops a None override): the architecture comes from the checkpoint
    error = network_error(workflow(corpus, None, tmp_path, "inference", pretrained_checkpoint="none"))
    assert isinstance(error, ValueError) and "built from a RECLF pretraining checkpoint" in str(error)
    assert "--load_pretrain false" in str(error)
