"""The reclf_classification bundle through MONAI's own bundle CLI on a tiny IU-Phantom and a
COVIDx-format fixture built at test time.

Every run uses small settings (64-pixel images from a tiny pretraining checkpoint, one epoch); one
trained run is shared by the evaluation, inference and export tests.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bundle_testing import (
    BUNDLES,
    assert_network_matches_metadata,
    event_files,
    export_inference_network,
    load_checkpoint,
    run_workflow,
    scalars,
    succeeded,
)
from dataset_layouts import COVIDX_TEST, COVIDX_TRAIN, covidx_list
from monai.bundle import ConfigWorkflow
from PIL import Image
from sample_files import real_chest_dicom
from sklearn.metrics import roc_auc_score

from reclf_monai.data import DataError, chest_xray_transforms, load_datalist
from reclf_monai.data.preparation.covidx import CLASS_NAMES as COVIDX_CLASSES
from reclf_monai.data.preparation.covidx import prepare_covidx
from reclf_monai.networks import ImageClassifier
from reclf_monai.phantom import ZERO_SHOT_CLASSES

pytestmark = pytest.mark.end_to_end

BUNDLE = BUNDLES / "reclf_classification"
CONFIGS = BUNDLE / "configs"
IMAGE_SIZE = 64
SMALL = {"batch_size": 8, "val_batch_size": 8, "num_workers": 0, "cache_rate": 0, "train#trainer#max_epochs": 1}
TRAINING_ITEMS = 49  # of the 80-report corpus
FRACTION = 0.5


def run_bundle(run_dir: Path, *configs: str, **overrides) -> subprocess.CompletedProcess:
    """``monai.bundle run`` of `configs`; checkpoints in run_dir/models, outputs in run_dir/eval
    unless `overrides` say otherwise."""
    settings = {"ckpt_dir": run_dir / "models", "output_dir": run_dir / "eval", "num_workers": 0, **overrides}
    return run_workflow(BUNDLE, run_dir, *configs, **settings)


def first_data_error(error: BaseException) -> DataError | None:
    """The DataError a config-parsing error was raised from (MONAI wraps it in RuntimeErrors)."""
    while error is not None and not isinstance(error, DataError):
        error = error.__cause__ or error.__context__
    return error


@pytest.fixture(scope="module")
def trained(corpus, checkpoint, tmp_path_factory) -> SimpleNamespace:
    """One training epoch on half the training labels with a frozen pretrained encoder; no image
    size or backbone given: they come from the pretraining checkpoint."""
    run_dir = tmp_path_factory.mktemp("trained")
    result = run_bundle(run_dir, "train", dataset_dir=corpus, pretrained_checkpoint=checkpoint, data_fraction=FRACTION, **SMALL)
    return SimpleNamespace(result=result, models=run_dir / "models", output=run_dir / "eval")


def test_train_saves_the_best_model_with_its_settings_and_one_event_file(trained, checkpoint):
    assert succeeded(trained.result)
    kept = math.ceil(FRACTION * TRAINING_ITEMS)
    assert f"data_fraction {FRACTION:g} (seed 0): {kept} of {TRAINING_ITEMS} items" in trained.result.stdout
    iterations = math.ceil(kept / SMALL["batch_size"])
    assert f"Iter: {iterations}/{iterations} -- train_loss:" in trained.result.stdout
    assert [path.name for path in trained.models.iterdir()] == ["model.pt"]

    trained_checkpoint = load_checkpoint(trained.models / "model.pt")
    assert set(trained_checkpoint) == {"model", "network_settings", "classification"}
    assert trained_checkpoint["network_settings"] == {
        "num_classes": len(ZERO_SHOT_CLASSES),
        "freeze_encoder": True,
        "image_encoder": {"backbone": "resnet18", "img_size": IMAGE_SIZE, "in_channels": 1, "vit_config": None, "imagenet_input": False},
    }
    assert trained_checkpoint["classification"] == {"task": "multi_label", "class_names": list(ZERO_SHOT_CLASSES)}
    # frozen: the saved encoder is the pretrained one, batch-norm statistics included
    encoder = {name: tensor for name, tensor in load_checkpoint(checkpoint)["model"].items() if name.startswith("image_encoder.features.")}
    saved = {name: tensor for name, tensor in trained_checkpoint["model"].items() if name.startswith("features.")}
    assert {"image_encoder." + name for name in saved} == set(encoder)
    assert any("running_mean" in name for name in saved)
    assert all(torch.equal(tensor, encoder["image_encoder." + name]) for name, tensor in saved.items())
    assert trained_checkpoint["model"]["head.weight"].shape == (len(ZERO_SHOT_CLASSES), 512)

    [events] = event_files(trained.output)
    logged = scalars(events)
    assert {"train/loss", "train/lr", "val_auc", "val_loss", "val_auc_classes"} <= set(logged)
    assert [step for step, _ in logged["train/loss"]] == list(range(1, iterations + 1))
    assert [rate for _, rate in logged["train/lr"]] == [pytest.approx(5e-4)] * iterations
    [(epoch, auc)] = logged["val_auc"]
    assert epoch == 1 and 0 <= auc <= 1
    # one AUC per class that has positives and negatives among the validation items, as documented
    per_class = {tag for tag in logged if tag.startswith("val_auc/")}
    assert per_class <= {f"val_auc/{name}" for name in ZERO_SHOT_CLASSES}
    assert logged["val_auc_classes"] == [(1, len(per_class))] and len(per_class) > 0
    assert all(len(logged[tag]) == 1 and 0 <= logged[tag][0][1] <= 1 for tag in per_class)


def _train_workflow(dataset_dir: Path, run_dir: Path, **overrides) -> ConfigWorkflow:
    """train.json in this process with the tiny settings."""
    folders = {"bundle_root": BUNDLE, "dataset_dir": dataset_dir, "ckpt_dir": run_dir / "models", "output_dir": run_dir / "eval"}
    settings = {**{key: str(path) for key, path in folders.items()}, **SMALL, **overrides}
    return ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", logging_file=False, **settings)


@pytest.mark.parametrize("freeze_encoder, pretrained_encoder", [("true", True), ("false", True), ("true", False)])
def test_training_leaves_a_frozen_encoder_alone_and_fine_tunes_on_request(corpus, checkpoint, tmp_path, freeze_encoder, pretrained_encoder):
    """Weights and batch-norm statistics before and after one epoch, as the CLI passes the switch."""
    encoder_start = str(checkpoint) if pretrained_encoder else "none"
    size = {} if pretrained_encoder else {"image_size": IMAGE_SIZE}  # the random baseline takes explicit settings
    workflow = _train_workflow(corpus, tmp_path, pretrained_checkpoint=encoder_start, freeze_encoder=freeze_encoder, data_fraction=0.2, **size)
    workflow.initialize()
    assert workflow.check_properties() == []
    network = workflow.parser.get_parsed_content("network")
    before = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    workflow.run()
    workflow.finalize()
    after = network.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert {"head.weight", "head.bias"} <= changed
    encoder_changed = {name for name in changed if name.startswith("features.")}
    if freeze_encoder == "true":
        assert encoder_changed == set()
    else:
        assert any(name.endswith("conv1.weight") for name in encoder_changed)
        assert any(name.endswith("running_mean") for name in encoder_changed)


def test_training_subsets_are_nested_reproducible_and_cover_every_class(corpus, checkpoint, tmp_path):
    """The training items as the trainer's dataset holds them, for three fractions and twice."""

    def dataset_images(fraction: float, seed: int = 0) -> list[str]:
        workflow = _train_workflow(corpus, tmp_path, pretrained_checkpoint=str(checkpoint), data_fraction=fraction, data_fraction_seed=seed)
        workflow.initialize()
        return [Path(item["image"]).name for item in workflow.parser.get_parsed_content("train#dataset#data")]

    small, half, full = dataset_images(0.1), dataset_images(0.5), dataset_images(1.0)
    assert len(half) == 25 and len(full) == TRAINING_ITEMS
    assert small == half[: len(small)] and half == full[:25]
    assert dataset_images(0.1) == small and dataset_images(0.1, seed=1) != small
    targets = {Path(item["image"]).name: item["target"] for item in load_datalist(corpus / "datalist.json", "training")}
    present = {index for name in full for index, flag in enumerate(targets[name]) if flag}
    assert present == {index for name in small for index, flag in enumerate(targets[name]) if flag}


def _classifier_from(model_file: Path) -> ImageClassifier:
    checkpoint = load_checkpoint(model_file)
    settings = checkpoint["network_settings"]
    network = ImageClassifier(settings["num_classes"], **settings["image_encoder"])
    network.load_state_dict(checkpoint["model"])
    return network.eval()


def _logits(network: ImageClassifier, images: list) -> torch.Tensor:
    transform = chest_xray_transforms(image_size=IMAGE_SIZE)
    with torch.no_grad():
        return network(torch.stack([transform({"image": str(image)})["image"] for image in images]).float())


def test_evaluate_scores_the_saved_model(trained, corpus, tmp_path):
    result = run_bundle(tmp_path, "inference", "evaluate", dataset_dir=corpus, ckpt_dir=trained.models, val_batch_size=8)
    assert succeeded(result)
    assert f"loaded weights from {trained.models / 'model.pt'} (backbone resnet18, img_size {IMAGE_SIZE}, num_classes 5)" in result.stdout
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]

    items = load_datalist(corpus / "datalist.json", "test")
    targets = np.array([item["target"] for item in items])
    logits = _logits(_classifier_from(trained.models / "model.pt"), [item["image"] for item in items])
    probabilities = torch.sigmoid(logits).numpy()
    scored = [index for index in range(targets.shape[1]) if 0 < targets[:, index].sum() < len(items)]
    expected = {ZERO_SHOT_CLASSES[index]: roc_auc_score(targets[:, index], probabilities[:, index]) for index in scored}
    assert report["auc_classes"] == len(scored) >= 3
    for name, auc in expected.items():
        assert report[f"auc/{name}"] == pytest.approx(auc, abs=1e-6)
    assert report["auc"] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.as_tensor(targets).float())
    assert report["loss"] == pytest.approx(bce.item(), rel=1e-5)


def _evaluation_workflow(models: Path, corpus: Path, run_dir: Path, **overrides) -> ConfigWorkflow:
    folders = {"bundle_root": BUNDLE, "dataset_dir": corpus, "ckpt_dir": models, "output_dir": run_dir / "eval"}
    settings = {**{key: str(path) for key, path in folders.items()}, "num_workers": 0, **overrides}
    files = [str(CONFIGS / "inference.json"), str(CONFIGS / "evaluate.json")]
    return ConfigWorkflow(config_file=files, workflow_type="infer", logging_file=False, **settings)


def test_evaluation_has_monai_infer_properties_and_the_checkpoint_weights(trained, corpus, tmp_path):
    workflow = _evaluation_workflow(trained.models, corpus, tmp_path)
    workflow.initialize()
    assert workflow.check_properties() == []
    weights = workflow.parser.get_parsed_content("evaluator").network.state_dict()
    saved = load_checkpoint(trained.models / "model.pt")["model"]
    assert weights.keys() == saved.keys() and all(torch.equal(weights[name], saved[name]) for name in saved)


def test_evaluation_refuses_a_checkpoint_or_data_that_does_not_fit(trained, corpus, checkpoint, tmp_path):
    # a pretraining checkpoint is no classifier: found before anything runs
    workflow = _evaluation_workflow(checkpoint.parent, corpus, tmp_path)
    with pytest.raises(RuntimeError) as raised:
        workflow.initialize()
    assert str(first_data_error(raised.value)).startswith(f"{checkpoint}: not a classification checkpoint")
    # a setting that contradicts the checkpoint
    workflow = _evaluation_workflow(trained.models, corpus, tmp_path, image_size=2 * IMAGE_SIZE)
    workflow.initialize()
    with pytest.raises(RuntimeError) as raised:
        workflow.parser.get_parsed_content("network")
    assert f"image_encoder.img_size: checkpoint {IMAGE_SIZE}, network {2 * IMAGE_SIZE}" in str(first_data_error(raised.value))
    # test data with other classes
    datalist = json.loads((corpus / "datalist.json").read_text())
    datalist["class_names"] = list(reversed(datalist["class_names"]))
    (tmp_path / "reordered.json").write_text(json.dumps(datalist))
    workflow = _evaluation_workflow(trained.models, corpus, tmp_path, datalist=str(tmp_path / "reordered.json"))
    with pytest.raises(RuntimeError) as raised:
        workflow.initialize()
    message = f"{tmp_path / 'reordered.json'}: class_names ['Nodule', 'Pleural Effusion', 'Opacity', 'Cardiomegaly', 'Atelectasis'] differ"
    assert str(first_data_error(raised.value)).startswith(message)


def test_inference_json_alone_writes_probabilities_of_png_and_dicom_images(trained, corpus, tmp_path):
    dicom = real_chest_dicom()
    png = Path(load_datalist(corpus / "datalist.json", "test")[0]["image"])
    datalist = tmp_path / "images.json"
    datalist.write_text(json.dumps({"test": [{"image": str(dicom)}, {"image": str(png)}]}))
    result = run_bundle(tmp_path, "inference", ckpt_dir=trained.models, infer_datalist=datalist)
    assert succeeded(result)
    with open(tmp_path / "eval" / "probabilities_test.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", *ZERO_SHOT_CLASSES]
    assert [Path(row[0]) for row in rows[1:]] == [dicom, png]
    expected = torch.sigmoid(_logits(_classifier_from(trained.models / "model.pt"), [dicom, png]))
    np.testing.assert_allclose(np.array([[float(value) for value in row[1:]] for row in rows[1:]]), expected.numpy(), atol=1e-5)


def test_network_matches_metadata_and_exports_with_inference_json_alone(trained, tmp_path):
    assert_network_matches_metadata(CONFIGS, tmp_path, bundle_root=BUNDLE, ckpt_dir=trained.models)

    scripted = export_inference_network(CONFIGS, tmp_path, trained.models / "model.pt", IMAGE_SIZE, bundle_root=BUNDLE, ckpt_dir=trained.models)
    image = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(image), _classifier_from(trained.models / "model.pt")(image), atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def covidx(tmp_path_factory) -> Path:
    """The COVIDx list files of dataset_layouts (test_prepare_covidx's fixture) with real images
    (a grey level per class), prepared by scripts/prepare_covidx.py's function: DATA/covidx.json."""
    folder = tmp_path_factory.mktemp("covidx")
    root = folder / "COVIDx"
    rng = np.random.default_rng(0)
    for split, entries in (("train", COVIDX_TRAIN), ("test", COVIDX_TEST)):
        (root / split).mkdir(parents=True)
        (root / f"{split}.txt").write_text(covidx_list(entries))
        for entry in entries:
            level = 60 + 60 * [name.lower() for name in COVIDX_CLASSES].index(entry[2].lower())
            pixels = np.clip(rng.normal(level, 20, size=(48, 40)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / split / entry[1])
    prepare_covidx(root, folder / "data")
    return folder / "data"


def test_multi_class_head_on_covidx_from_a_random_encoder(covidx, tmp_path):
    """--task multi_class on prepare_covidx output, without a pretraining checkpoint (the baseline)."""
    datalist = covidx / "covidx.json"
    result = run_bundle(
        tmp_path, "train", dataset_dir=covidx, datalist=datalist, task="multi_class", pretrained_checkpoint="none", image_size=IMAGE_SIZE, **SMALL
    )
    assert succeeded(result)
    checkpoint = load_checkpoint(tmp_path / "models" / "model.pt")
    assert checkpoint["classification"] == {"task": "multi_class", "class_names": COVIDX_CLASSES}
    assert checkpoint["network_settings"]["num_classes"] == 3
    [(epoch, accuracy)] = scalars(event_files(tmp_path / "eval")[0])["val_acc"]
    assert epoch == 1 and 0 <= accuracy <= 1

    result = run_bundle(tmp_path, "inference", "evaluate", dataset_dir=covidx, datalist=datalist)
    assert succeeded(result)
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]
    items = load_datalist(datalist, "test")
    logits = _logits(_classifier_from(tmp_path / "models" / "model.pt"), [item["image"] for item in items])
    targets = torch.tensor([item["target"] for item in items])
    assert report["acc"] == pytest.approx((logits.argmax(dim=1) == targets).float().mean().item())
    assert report["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item(), rel=1e-5)
    assert report["auc_classes"] == 3
