"""The reclf_zeroshot_classification bundle through MONAI's bundle CLI, on a tiny IU-Phantom (five
classes and the laterality set) and on CheXpert 5x200 as scripts/prepare_chexpert.py writes it.

One small untrained RECLF checkpoint (``write_tiny_pretraining_checkpoint``) stands in for a
pretraining run: the tests check what is scored and written, not how well.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_testing import (
    BUNDLES,
    assert_network_matches_metadata,
    export_inference_network,
    load_checkpoint,
    run_workflow,
    succeeded,
    trained_model,
)
from dataset_layouts import chexpert_row, chexpert_train_rows, write_chexpert_csv
from ignite.engine import Engine
from ignite.metrics import EpochMetric
from monai.bundle import ConfigWorkflow
from monai.handlers import from_engine
from PIL import Image
from sample_files import real_chest_dicom
from sklearn.metrics import f1_score, roc_auc_score

from reclf_monai.data import DataError, TokenizeReportd, chest_xray_transforms, load_datalist
from reclf_monai.data.preparation.chexpert import COMPETITION_CLASSES, prepare_chexpert
from reclf_monai.metrics import (
    ZeroShotMetric,
    encode_texts,
    relation_probe_scores,
    score_all_pairs,
    zero_shot_classification_metrics,
)
from reclf_monai.metrics.relation_probe import probe_texts
from reclf_monai.metrics.zero_shot import mean_over_prompts
from reclf_monai.networks import RECLFModel, settings_differences
from reclf_monai.phantom import ZERO_SHOT_CLASSES, laterality_prompts, single_sided_finding, write_laterality_set
from reclf_monai.phantom.laterality import LATERAL_FINDINGS, SIDES
from reclf_monai.phantom.relation_probe import read_probe_cases

pytestmark = pytest.mark.end_to_end

BUNDLE = BUNDLES / "reclf_zeroshot_classification"
CONFIGS = BUNDLE / "configs"
IMAGE_SIZE = 64
EMBED_DIM = 32
SMALL = {"batch_size": 4, "num_workers": 0}


@pytest.fixture(scope="module")
def corpus(zero_shot_corpus) -> Path:
    """120 IU reports: 35 test items, 2 zero-shot images per class, 10 laterality images (6 classes)
    (tests/shared_fixtures.py)."""
    return zero_shot_corpus


@pytest.fixture(scope="module")
def checkpoint(tiny_pretraining_checkpoint_seed1) -> Path:
    """Seed 1: the bundle seeds its own initialisation with 0, so the untrained baseline differs from it."""
    return tiny_pretraining_checkpoint_seed1


def run_bundle(run_dir: Path, dataset_dir: Path, *configs: str, **overrides) -> subprocess.CompletedProcess:
    return run_workflow(BUNDLE, run_dir, *configs, dataset_dir=dataset_dir, output_dir=run_dir / "eval", **{**SMALL, **overrides})


def read_probabilities(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (run_dir / "eval" / "class_probabilities.csv").open() as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def test_evaluate_five_classes(corpus, checkpoint, tmp_path):
    result = run_bundle(tmp_path, corpus, "inference", "evaluate", pretrained_checkpoint=checkpoint)
    assert succeeded(result)
    assert not list(tmp_path.rglob("events.out.tfevents.*"))  # evaluation only: no TensorBoard (docs/tensorboard.md)
    assert f"loaded weights from {checkpoint} (aggregation reclf, backbone resnet18, img_size {IMAGE_SIZE})" in result.stdout
    items = load_datalist(corpus / "zeroshot_5xN.json", "test")
    columns, rows = read_probabilities(tmp_path)
    assert columns == ["image", "true_class", "predicted_class", *ZERO_SHOT_CLASSES]
    assert [row["image"] for row in rows] == [item["image"] for item in items]
    assert [row["true_class"] for row in rows] == [item["class_name"] for item in items]
    probabilities = np.array([[float(row[name]) for name in ZERO_SHOT_CLASSES] for row in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert [row["predicted_class"] for row in rows] == [ZERO_SHOT_CLASSES[i] for i in probabilities.argmax(axis=1)]

    # the probabilities are the softmax of ZeroShotMetric's class scores: pair logits averaged over prompts
    model = trained_model(checkpoint)
    metric = ZeroShotMetric(model, json.loads((corpus / "prompts.json").read_text()), ZERO_SHOT_CLASSES, TokenizeReportd(max_length=48))
    images = torch.stack([chest_xray_transforms(image_size=IMAGE_SIZE)({"image": item["image"]})["image"] for item in items])
    with torch.no_grad():
        metric.update((model.encode_image(images.as_tensor()), [item["target"] for item in items]))
        expected = torch.softmax(metric.class_scores(), dim=1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)

    # metrics.json holds ACC, macro F1 and macro AUC of those probabilities, as scikit-learn counts them
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    targets = [item["target"] for item in items]
    predicted = probabilities.argmax(axis=1)
    zero_shot = report["zero_shot"]
    assert zero_shot["acc"] == pytest.approx(np.mean(predicted == targets))
    assert zero_shot["f1"] == pytest.approx(f1_score(targets, predicted, average="macro", labels=range(5), zero_division=0))
    assert zero_shot["auc"] == pytest.approx(roc_auc_score(targets, probabilities, multi_class="ovr", average="macro"), abs=1e-6)
    assert zero_shot["zeroshot_auc"] == zero_shot["auc"]
    assert report["evaluated"] == {"images": len(items), "classes": 5}
    assert f"zero_shot: acc={zero_shot['acc']:.4f}, auc={zero_shot['auc']:.4f}, f1={zero_shot['f1']:.4f}" in result.stdout


def test_laterality_set_is_single_sided_balanced_and_seeded(corpus, tmp_path):
    content = json.loads((corpus / "zeroshot_laterality.json").read_text())
    findings_of = {item["uid"]: item["findings"] for item in json.loads((corpus / "datalist.json").read_text())["test"]}
    class_names = content["class_names"]
    assert len(class_names) >= 4 and "sides are the patient's" in content["description"]
    for item in content["test"]:
        assert class_names[item["target"]] == item["class_name"] == f"{item['side']} {item['finding'].lower()}"
        assert single_sided_finding(findings_of[item["uid"]]) == (item["finding"], item["side"])
    for finding in {item["finding"] for item in content["test"]}:
        counts = [sum(item["finding"] == finding and item["side"] == side for item in content["test"]) for side in SIDES]
        assert counts[0] == counts[1] > 0
    # a written set lives anywhere: paths relative to its own folder, the same draw for the same seed
    write_laterality_set(corpus, tmp_path / "elsewhere", seed=0)
    moved = load_datalist(tmp_path / "elsewhere" / "zeroshot_laterality.json", "test")
    assert [item["image"] for item in moved] == [item["image"] for item in load_datalist(corpus / "zeroshot_laterality.json", "test")]


def test_laterality_prompts_differ_only_in_the_side_word():
    prompts = laterality_prompts()
    assert list(prompts) == [f"{side} {finding.lower()}" for finding in LATERAL_FINDINGS for side in SIDES]
    for finding in LATERAL_FINDINGS:
        left, right = prompts[f"left {finding.lower()}"], prompts[f"right {finding.lower()}"]
        assert len(left) >= 3
        for left_prompt, right_prompt in zip(left, right):
            assert left_prompt.split().count("left") == 1 and right_prompt.split().count("right") == 1
            assert left_prompt.replace("left", "right") == right_prompt


@pytest.mark.parametrize(
    "findings, expected",
    [
        ([{"type": "Pleural Effusion", "side": "left"}, {"type": "Blunted Costophrenic Angle", "side": "left"}], ("Pleural Effusion", "left")),
        ([{"type": "Consolidation", "side": "right"}, {"type": "Cardiomegaly", "side": None}], ("Opacity", "right")),
        ([{"type": "Nodule", "side": "left"}, {"type": "Nodule", "side": "right"}], None),  # both sides
        ([{"type": "Nodule", "side": "left"}, {"type": "Atelectasis", "side": "left"}], None),  # two findings
        ([{"type": "Cardiomegaly", "side": None}], None),
    ],
)
def test_single_sided_finding(findings, expected):
    assert single_sided_finding(findings) == expected


def test_evaluate_laterality_set(corpus, checkpoint, tmp_path):
    """Items may also carry a mask under `label`, as the SIIM and RSNA segmentation datalists do."""
    content = json.loads((corpus / "zeroshot_laterality.json").read_text())
    items = load_datalist(corpus / "zeroshot_laterality.json", "test")  # absolute paths: the list is written outside the corpus
    with_masks = {**content, "test": [{**item, "label": item["image"]} for item in items]}
    (tmp_path / "zeroshot_laterality_with_masks.json").write_text(json.dumps(with_masks))
    result = run_bundle(
        tmp_path, corpus, "inference", "evaluate", pretrained_checkpoint=checkpoint,
        zeroshot_datalist=tmp_path / "zeroshot_laterality_with_masks.json", prompts_file=corpus / "prompts_laterality.json",
    )  # fmt: skip
    assert succeeded(result)
    columns, rows = read_probabilities(tmp_path)
    assert columns[3:] == content["class_names"]
    assert [row["true_class"] for row in rows] == [item["class_name"] for item in content["test"]]
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["evaluated"] == {"images": len(content["test"]), "classes": len(content["class_names"])}
    assert all(0 <= report["zero_shot"][name] <= 1 for name in ("acc", "f1", "auc"))


def test_inference_of_image_only_png_and_dicom(corpus, checkpoint, tmp_path):
    """inference.json alone: images without reports or labels, a phantom PNG and a real chest DICOM."""
    png = load_datalist(corpus / "datalist.json", "test")[0]["image"]
    datalist = tmp_path / "images.json"
    datalist.write_text(json.dumps({"test": [{"image": png}, {"image": str(real_chest_dicom())}]}))
    result = run_bundle(tmp_path, corpus, "inference", pretrained_checkpoint=checkpoint, infer_datalist=datalist)
    assert succeeded(result)
    columns, rows = read_probabilities(tmp_path)
    assert columns == ["image", "true_class", "predicted_class", *ZERO_SHOT_CLASSES]
    assert [row["image"] for row in rows] == [png, str(real_chest_dicom())]
    assert all(row["true_class"] == "" and row["predicted_class"] in ZERO_SHOT_CLASSES for row in rows)
    assert all(math.isclose(sum(float(row[name]) for name in ZERO_SHOT_CLASSES), 1.0, abs_tol=1e-5) for row in rows)


def test_chexpert_5x200_as_prepared(checkpoint, tmp_path):
    """The datalist scripts/prepare_chexpert.py writes (the format of its test fixture, with images
    that can be read) and the bundle's CheXpert prompts."""
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    valid = [chexpert_row("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", Edema="1.0")]
    write_chexpert_csv(root / "train.csv", chexpert_train_rows())
    write_chexpert_csv(root / "valid.csv", valid)
    pixels = np.random.default_rng(0).integers(0, 255, (2 * IMAGE_SIZE, 2 * IMAGE_SIZE), dtype=np.uint8)
    for entry in [*chexpert_train_rows(), *valid]:
        image = root / entry[0].split("/", 1)[1]
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(image)
    prepare_chexpert(root, tmp_path / "chexpert", per_class=2, validation_size=5)
    datalist = tmp_path / "chexpert" / "chexpert_5x200.json"
    result = run_bundle(
        tmp_path, tmp_path / "chexpert", "inference", "evaluate", pretrained_checkpoint=checkpoint,
        zeroshot_datalist=datalist, prompts_file=CONFIGS / "prompts_chexpert.json",
    )  # fmt: skip
    assert succeeded(result)
    columns, rows = read_probabilities(tmp_path)
    assert columns[3:] == list(COMPETITION_CLASSES)
    assert [row["true_class"] for row in rows] == [COMPETITION_CLASSES[item["target"]] for item in load_datalist(datalist, "test")]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["evaluated"] == {"images": 10, "classes": 5}


def _workflow(corpus: Path, run_dir: Path, **overrides) -> ConfigWorkflow:
    settings = {"bundle_root": str(BUNDLE), "dataset_dir": str(corpus), "output_dir": str(run_dir / "eval"), **SMALL, **overrides}
    config_file = [str(CONFIGS / "inference.json"), str(CONFIGS / "evaluate.json")]
    workflow = ConfigWorkflow(config_file=config_file, workflow_type="infer", logging_file=False, **settings)
    workflow.initialize()
    return workflow


def test_evaluation_has_monai_infer_properties(corpus, checkpoint, tmp_path):
    assert _workflow(corpus, tmp_path, pretrained_checkpoint=str(checkpoint)).check_properties() == []


def test_baseline_switch(corpus, checkpoint, tmp_path):
    saved = load_checkpoint(checkpoint)
    pretrained = _workflow(corpus, tmp_path, pretrained_checkpoint=str(checkpoint)).parser.get_parsed_content("evaluator").network
    assert all(torch.equal(pretrained.state_dict()[name], saved["model"][name]) for name in saved["model"])

    # "false" as the CLI passes it: the checkpoint's network without its weights
    baseline = _workflow(corpus, tmp_path, pretrained_checkpoint=str(checkpoint), load_pretrain="false").parser.get_parsed_content("evaluator").network
    assert settings_differences(saved["network_settings"], baseline.settings) == []
    assert baseline.state_dict().keys() == saved["model"].keys()
    assert not any(torch.equal(baseline.state_dict()[name], saved["model"][name]) for name in saved["model"] if name.startswith("image_encoder.global"))

    # no checkpoint: the explicit settings, only when weights are not asked for
    explicit = _workflow(corpus, tmp_path, pretrained_checkpoint="none", load_pretrain=False, **{"explicit_settings#image_encoder#img_size": IMAGE_SIZE})
    assert explicit.parser.get_parsed_content("network").settings["image_encoder"]["img_size"] == IMAGE_SIZE
    with pytest.raises(RuntimeError) as raised:
        _workflow(corpus, tmp_path, pretrained_checkpoint=None).parser.get_parsed_content("network")
    assert "load_pretrain is true but no pretrained_checkpoint was given" in repr(raised.value) + repr(raised.value.__cause__)


def _cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None and not isinstance(error, DataError):
        error = error.__cause__
    return error


@pytest.mark.parametrize("content", ["weights only", "classifier", "text"])
def test_a_file_that_is_no_reclf_pretraining_checkpoint_is_named(corpus, checkpoint, tmp_path, content):
    bad = tmp_path / "model.pt"
    saved = load_checkpoint(checkpoint)
    if content == "weights only":
        torch.save(saved["model"], bad)
        problem = "not a RECLF checkpoint: no 'network_settings' entry"
    elif content == "classifier":  # another bundle's checkpoint: settings that describe no image-report model
        torch.save({"model": {}, "network_settings": {"num_classes": 5, "backbone": "resnet18"}}, bad)
        problem = "not a RECLF pretraining checkpoint"
    else:
        bad.write_text("not a checkpoint")
        problem = "not a readable PyTorch checkpoint"
    for load_pretrain in (True, False):  # the baseline too takes its network from the file
        with pytest.raises(RuntimeError) as raised:
            _workflow(corpus, tmp_path, pretrained_checkpoint=str(bad), load_pretrain=load_pretrain).parser.get_parsed_content("network")
        assert str(_cause(raised.value)).startswith(f"{bad}: {problem}"), raised.value


def test_inference_json_alone_for_verify_net_in_out_and_ckpt_export(checkpoint, tmp_path):
    """As model-zoo CI runs them: verify_net_in_out needs no checkpoint (the explicit settings match
    metadata.json); ckpt_export takes the network's settings from the checkpoint it exports."""
    assert_network_matches_metadata(CONFIGS, tmp_path, bundle_root=BUNDLE)
    scripted = export_inference_network(CONFIGS, tmp_path, checkpoint, IMAGE_SIZE, bundle_root=BUNDLE, pretrained_checkpoint=checkpoint)
    image = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(image), trained_model(checkpoint)(image), atol=1e-5, rtol=1e-4)


def test_class_scores_and_metrics_by_hand():
    # two prompts for class 0, one for class 1: class scores are the means over each class's prompts
    logits = torch.tensor([[1.0, 3.0, 0.5], [0.0, 1.0, 4.0]])
    scores = mean_over_prompts(logits, torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(scores, torch.tensor([[2.0, 0.5], [0.5, 4.0]]))

    # 4 images, 3 classes. Argmax: 0, 1, 1, 2 against targets 0, 1, 2, 2 -> ACC 3/4.
    # F1: class 0 1.0; class 1 P=1/2 R=1 -> 2/3; class 2 P=1 R=1/2 -> 2/3; macro (1 + 2/3 + 2/3) / 3 = 7/9.
    # AUC (one-vs-rest): class 0 1.0 (0.7 above 0.2, 0.4, 0.1); class 1: positive 0.6 against
    # 0.2, 0.5, 0.2 -> 1.0; class 2: positives 0.1, 0.7 against negatives 0.1, 0.2 -> (0.5 + 0 + 1 + 1) / 4 = 0.625.
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.4, 0.5, 0.1], [0.1, 0.2, 0.7]])
    targets = [0, 1, 2, 2]
    expected = {"acc": 0.75, "f1": 7 / 9, "auc": (1.0 + 1.0 + 0.625) / 3}
    assert zero_shot_classification_metrics(probabilities, targets) == pytest.approx(expected)

    # the bundle's ignite metric over decollated items, in two batches, gives the same figures
    metric = EpochMetric(zero_shot_classification_metrics, output_transform=from_engine(["pred", "label"]), check_compute_fn=False)
    engine = Engine(lambda engine, batch: batch)
    metric.attach(engine, "zeroshot")
    items = [{"pred": p, "label": torch.tensor(t)} for p, t in zip(probabilities, targets)]
    metrics = engine.run([items[:2], items[2:]]).metrics
    assert {name: metrics[name] for name in expected} == pytest.approx(expected)


def test_relation_probe_scores_the_probe_images_against_their_texts(corpus, checkpoint, tmp_path):
    """configs/relation_probe.json on the probe IU-Phantom writes: the same shares as scoring the
    probe directly with the checkpoint's model."""
    result = run_bundle(tmp_path, corpus, "inference", "relation_probe", pretrained_checkpoint=checkpoint)
    assert succeeded(result)
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())["relation_probe"]
    probe = corpus / "relation_probe.json"
    cases = read_probe_cases(probe)
    assert report["all/cases"] == len(cases) and report["two findings/cases"] == sum(len(case["findings"]) == 2 for case in cases)

    model = RECLFModel.from_checkpoint(checkpoint)
    items = load_datalist(probe, "test", required_keys=["image", "label"])
    transform = chest_xray_transforms("image", image_size=IMAGE_SIZE)
    settings = model.settings["text_encoder"]
    tokenize = TokenizeReportd(tokenizer=settings["model_name_or_path"], max_length=settings["max_length"])
    texts, owners = probe_texts(cases)
    with torch.no_grad():
        images = model.encode_image(torch.stack([transform({"image": item["image"]})["image"] for item in items]))
    scores = score_all_pairs(model, images, encode_texts(model, texts, tokenize))
    expected = relation_probe_scores(scores, torch.tensor([item["label"] for item in items]), cases, owners)
    for name, value in expected.items():
        assert report[name] == pytest.approx(value, abs=1e-6), name
