"""The reclf_segmentation bundle through MONAI's own bundle CLI on a tiny IU-Phantom built at test time.

Tiny settings (64-pixel images, a narrow decoder, one epoch, a small untrained pretraining
checkpoint) keep each CLI call to seconds; one frozen-encoder training run is shared by the
evaluation, inference and export tests.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bundle_testing import (
    assert_metadata_valid,
    assert_network_matches_metadata,
    event_files,
    export_inference_network,
    images,
    load_checkpoint,
    run_workflow,
    scalars,
    succeeded,
)
from dataset_layouts import write_dicom
from ignite.engine import Engine
from monai.bundle import ConfigParser
from PIL import Image
from sample_files import real_chest_dicom
from segmentation_testing import BUNDLE, CONFIGS, IMAGE_SIZE, parsed_workflow, run_in_process

from reclf_monai.data import DataError, chest_xray_transforms, load_datalist
from reclf_monai.data.image_loading import read_display_intensities
from reclf_monai.data.preparation.siim_pneumothorax import prepare_siim_pneumothorax
from reclf_monai.networks import PretrainedUNet
from reclf_monai.phantom import build_corpus

pytestmark = pytest.mark.end_to_end

DECODER = [32, 16, 16, 8, 8]
BATCH_SIZE = 8
SMALL = {
    "decoder_channels": str(DECODER),
    "batch_size": BATCH_SIZE,
    "val_batch_size": 8,
    "num_workers": 0,
    "cache_rate": 0,
    "train#trainer#max_epochs": 1,
}
# MONAI's TensorBoardImageHandler tags: the input, the label and the overlay of label and prediction
OVERLAY_IMAGES = {"input_0_HW_0", "input_1_HW_0", "output_CHW"}
ENCODER_PREFIX = "image_encoder.features."  # the pretraining checkpoint's ResNet ...
UNET_ENCODER_PREFIX = "encoder."  # ... and the same ResNet inside the U-Net


def run_bundle(run_dir: Path, *configs: str, **overrides) -> subprocess.CompletedProcess:
    """``monai.bundle run`` of this bundle's `configs`; outputs under run_dir unless overridden."""
    return run_workflow(BUNDLE, run_dir, *configs, **{"ckpt_dir": run_dir / "models", "output_dir": run_dir / "eval", **overrides})


def train(run_dir: Path, dataset_dir: Path, **overrides) -> subprocess.CompletedProcess:
    return run_bundle(run_dir, "train", dataset_dir=dataset_dir, **SMALL, **overrides)


def encoder_weights(weights: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix) :]: tensor for name, tensor in weights.items() if name.startswith(prefix)}


def l_shaped_mask(rows: int = 128, columns: int = 96) -> np.ndarray:
    """An asymmetric mask, 0/255: a vertical bar and a foot to the right, in even pixel blocks so
    that halving the size (128 -> 64 rows) and doubling it back are exact."""
    mask = np.zeros((rows, columns), dtype=np.uint8)
    mask[10:80, 20:30] = 255
    mask[70:80, 30:62] = 255
    return mask


# A network whose logits are +1 where the preprocessed image is bright and -1 elsewhere: the
# predicted mask is the input image, so any flip or transpose on the way shows in the output.
IMAGE_AS_MASK_NETWORK = "$torch.nn.Threshold(0.5, -1.0)"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """40 IU reports: 26 training, 3 validation, 10 test items."""
    folder = tmp_path_factory.mktemp("iu_phantom")
    build_corpus(folder, image_size=IMAGE_SIZE, seed=0, limit=40, workers=1)
    return folder


@pytest.fixture(scope="module")
def trained(corpus, checkpoint, tmp_path_factory) -> SimpleNamespace:
    """One epoch with the frozen pretrained encoder (the default), shared by several tests."""
    run_dir = tmp_path_factory.mktemp("trained")
    result = train(run_dir, corpus, pretrained_checkpoint=checkpoint)
    iterations = -(-len(load_datalist(corpus / "datalist.json", "training")) // BATCH_SIZE)
    return SimpleNamespace(result=result, models=run_dir / "models", output=run_dir / "eval", iterations=iterations)


def assert_overlay_images(event_file: Path) -> dict[str, np.ndarray]:
    """One validation's input, label and overlay at step 1, network-sized: the overlay is the input
    in grey where there is neither label nor prediction, and green-tinted wherever the label is.
    Returns the three images by tag."""
    pictures = images(event_file)
    assert set(pictures) == OVERLAY_IMAGES
    [[(step, image)], [(_, label)], [(_, overlay)]] = [pictures[tag] for tag in sorted(OVERLAY_IMAGES)]
    assert step == 1 and image.shape == label.shape == overlay.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert image.std() > 0
    red, green, blue = (overlay[..., channel].astype(int) for channel in range(3))
    truth = label[..., 0] > 127
    assert np.all(green[truth] - blue[truth] >= 126)
    assert np.array_equal(green[~truth], blue[~truth])
    grey = ~truth & (red == blue)
    assert grey.any() and np.array_equal(overlay[grey][:, 0], image[grey][:, 0])
    return {"input_0_HW_0": image, "input_1_HW_0": label, "output_CHW": overlay}


def test_training_keeps_the_frozen_encoder_and_writes_the_best_model(trained, checkpoint):
    assert succeeded(trained.result)
    assert sorted(path.name for path in trained.models.iterdir()) == ["model.pt"]
    best = load_checkpoint(trained.models / "model.pt")
    assert set(best) == {"model", "network_settings"}
    assert best["network_settings"] == {
        "out_channels": 1,
        "decoder_channels": DECODER,
        "freeze_encoder": True,
        "image_encoder": {"backbone": "resnet18", "img_size": IMAGE_SIZE, "in_channels": 1, "vit_config": None, "imagenet_input": False},
    }
    # every encoder tensor, batch-norm statistics included, is still the pretraining checkpoint's
    pretrained = encoder_weights(load_checkpoint(checkpoint)["model"], ENCODER_PREFIX)
    saved = encoder_weights(best["model"], UNET_ENCODER_PREFIX)
    assert saved.keys() == pretrained.keys() and len(saved) > 0
    assert all(torch.equal(saved[name], pretrained[name]) for name in saved)

    assert f"Iter: {trained.iterations}/{trained.iterations} -- train_loss:" in trained.result.stdout
    [events] = event_files(trained.output)
    logged = scalars(events)
    assert [step for step, _ in logged["train/loss"]] == list(range(1, trained.iterations + 1))
    for name in ("val_mean_dice", "val_dice_nonempty"):
        [(epoch, value)] = logged[name]
        assert epoch == 1 and 0 <= value <= 1
    assert_overlay_images(events)


def test_fine_tuning_on_a_fraction_of_prepared_siim_data(siim, checkpoint, tmp_path):
    """scripts/prepare_siim.py's output (DICOM images, RLE masks written as PNG), encoder fine-tuned."""
    data = tmp_path / "data"
    prepare_siim_pneumothorax(siim, data)
    datalist = data / "siim_pneumothorax.json"
    result = train(tmp_path, data, datalist=datalist, pretrained_checkpoint=checkpoint, freeze_encoder="false", data_fraction=0.5)
    assert succeeded(result)
    items = load_datalist(datalist, "training")
    nonempty = sum(item["target"] for item in items)
    subset = -(-len(items) // 2)
    assert f"data_fraction 0.5: {subset} of {len(items)} training items" in result.stdout
    assert f"with a non-empty mask, {nonempty} in all)" in result.stdout
    [events] = event_files(tmp_path / "eval")
    logged = scalars(events)
    assert [step for step, _ in logged["train/loss"]] == list(range(1, -(-subset // BATCH_SIZE) + 1))
    [(_, dice)] = logged["val_mean_dice"]
    assert 0 <= dice <= 1
    best = load_checkpoint(tmp_path / "models" / "model.pt")
    assert best["network_settings"]["freeze_encoder"] is False
    pretrained = encoder_weights(load_checkpoint(checkpoint)["model"], ENCODER_PREFIX)
    saved = encoder_weights(best["model"], UNET_ENCODER_PREFIX)
    assert not torch.equal(saved["backbone.conv1.weight"], pretrained["backbone.conv1.weight"])


def test_evaluation_scores_its_own_checkpoint(trained, corpus, tmp_path):
    result = run_bundle(
        tmp_path, "inference", "evaluate", dataset_dir=corpus, ckpt_dir=trained.models, eval_split="validation", num_workers=0
    )
    assert succeeded(result)
    assert f"loaded weights from {trained.models / 'model.pt'} (backbone resnet18, img_size {IMAGE_SIZE}, out_channels 1)" in result.stdout
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())["validation"]
    logged = scalars(event_files(trained.output)[0])
    assert report["mean_dice"] == pytest.approx(logged["val_mean_dice"][0][1], abs=1e-6)
    assert report["dice_nonempty"] == pytest.approx(logged["val_dice_nonempty"][0][1], abs=1e-6)
    [events] = event_files(tmp_path / "eval")
    evaluated = scalars(events)
    assert set(evaluated) == {"mean_dice", "dice_nonempty"}
    assert all(evaluated[name] == [(1, pytest.approx(report[name], abs=1e-6))] for name in evaluated)
    assert_overlay_images(events)
    with (tmp_path / "eval" / "mean_dice_raw.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    validation = load_datalist(corpus / "datalist.json", "validation")
    assert [row["filename"] for row in rows] == [item["image"] for item in validation]
    assert np.mean([float(row["mean"]) for row in rows]) == pytest.approx(report["mean_dice"], abs=1e-6)


def _data_error(configs: list[str], item: str, **overrides) -> str:
    workflow = parsed_workflow(configs, "infer", **overrides)
    with pytest.raises(RuntimeError) as raised:
        workflow.parser.get_parsed_content(item)
    cause = raised.value
    while cause is not None and not isinstance(cause, DataError):
        cause = cause.__cause__
    assert cause is not None, raised.value
    return str(cause)


def test_evaluation_refuses_a_checkpoint_that_does_not_fit(trained, corpus, checkpoint, tmp_path):
    configs = ["inference.json", "evaluate.json"]
    folders = {"dataset_dir": corpus, "output_dir": tmp_path / "eval"}
    message = _data_error(configs, "evaluator", ckpt_dir=checkpoint.parent, **folders)
    assert message.startswith(f"{checkpoint}: not a segmentation checkpoint: its settings lack out_channels, decoder_channels")
    message = _data_error(configs, "evaluator", ckpt_dir=trained.models, image_size=2 * IMAGE_SIZE, **folders)
    assert message.startswith(f"{trained.models / 'model.pt'}: checkpoint was written for another network")
    assert f"image_encoder.img_size: checkpoint {IMAGE_SIZE}, network {2 * IMAGE_SIZE}" in message
    message = _data_error(configs, "evaluator", ckpt_dir=tmp_path / "absent", **folders)
    assert message == f"{tmp_path / 'absent' / 'model.pt'}: checkpoint file not found"


@pytest.mark.parametrize("configs, prefix", [(["train.json"], "validate#"), (["inference.json", "evaluate.json"], "")])
def test_dice_counts_empty_masks_as_hand_computed(configs, prefix):
    """The bundle's own metric objects on five 4x4 cases:
    empty truth and empty prediction -> 1; empty truth, one predicted pixel -> 0;
    4 true pixels, 3 of them predicted plus 1 outside -> 2*3/(4+4) = 0.75; 2 true pixels, none
    predicted -> 0; 3 true pixels predicted exactly -> 1.
    Mean Dice over all five: 2.75 / 5 = 0.55; over the three with a non-empty truth: 1.75 / 3."""
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in configs])
    key_metric = parser.get_parsed_content(f"{prefix}key_metric")
    metrics = {**key_metric, **parser.get_parsed_content(f"{prefix}additional_metrics")}
    mean_name, nonempty_name = list(key_metric)[0], [name for name in metrics if name not in key_metric][0]

    def mask(*pixels):
        image = torch.zeros(1, 4, 4)
        for row, column in pixels:
            image[0, row, column] = 1
        return image

    cases = [
        (mask(), mask()),
        (mask((0, 0)), mask()),
        (mask((1, 1), (1, 2), (2, 1), (3, 3)), mask((1, 1), (1, 2), (2, 1), (2, 2))),
        (mask(), mask((0, 3), (1, 3))),
        (mask((3, 0), (3, 1), (2, 0)), mask((3, 0), (3, 1), (2, 0))),
    ]
    engine = Engine(lambda engine, batch: batch)
    for name, metric in metrics.items():
        metric.attach(engine, name)
    state = engine.run([[{"pred": pred, "label": label} for pred, label in cases]])
    assert state.metrics[mean_name] == pytest.approx(0.55)
    assert state.metrics[nonempty_name] == pytest.approx(1.75 / 3)
    assert mean_name.endswith("mean_dice") and nonempty_name.endswith("dice_nonempty")


@pytest.fixture(scope="module")
def l_shaped_files(tmp_path_factory) -> SimpleNamespace:
    """The L-shaped mask as a PNG image, as a DICOM image (MONOCHROME2, bright inside), as a mask
    PNG, and mirrored left-right as a mask PNG (the same size, so only the content can tell)."""
    folder = tmp_path_factory.mktemp("l_shaped")
    mask = l_shaped_mask()
    Image.fromarray(mask).save(folder / "l_image.png")
    write_dicom(folder / "l_scan.dcm", mask > 0, "1.2.826.0.1.3680043.8.498.1")
    Image.fromarray(mask).save(folder / "l_mask.png")
    Image.fromarray(np.ascontiguousarray(mask[:, ::-1])).save(folder / "l_mirrored.png")
    return SimpleNamespace(folder=folder, mask=mask)


def test_inference_writes_masks_in_the_input_orientation(l_shaped_files, tmp_path):
    """PNG and DICOM in, 0/255 uint8 PNG masks out with the input's rows and columns, pixel for pixel."""
    files = l_shaped_files
    datalist = tmp_path / "images.json"
    datalist.write_text(json.dumps({"test": [{"image": str(files.folder / name)} for name in ("l_image.png", "l_scan.dcm")]}))
    output = tmp_path / "eval"
    run_in_process(["inference.json"], infer_datalist=datalist, network=IMAGE_AS_MASK_NETWORK, image_size=IMAGE_SIZE, output_dir=output)
    assert sorted(path.name for path in output.iterdir()) == ["l_image_mask.png", "l_scan_mask.png"]
    for name in ("l_image_mask.png", "l_scan_mask.png"):
        with Image.open(output / name) as written:
            assert written.mode == "L"
            np.testing.assert_array_equal(np.asarray(written), files.mask)


def test_evaluation_aligns_labels_with_png_and_dicom_images(l_shaped_files, tmp_path):
    """The labels go through the images' reader and geometry: the image-as-mask network scores
    Dice 1 on the L (PNG and DICOM images) and less on its mirror image."""
    folder = l_shaped_files.folder
    items = [
        {"image": str(folder / "l_image.png"), "label": str(folder / "l_mask.png")},
        {"image": str(folder / "l_scan.dcm"), "label": str(folder / "l_mask.png")},
        {"image": str(folder / "l_image.png"), "label": str(folder / "l_mirrored.png")},
    ]
    datalist = tmp_path / "labelled.json"
    datalist.write_text(json.dumps({"test": items}))
    output = tmp_path / "eval"
    run_in_process(["inference.json", "evaluate.json"], datalist=datalist, network=IMAGE_AS_MASK_NETWORK, image_size=IMAGE_SIZE, output_dir=output)
    with (output / "mean_dice_raw.csv").open() as handle:
        dice = [float(row["mean"]) for row in csv.DictReader(handle)]
    assert dice[:2] == [1.0, 1.0] and dice[2] < 0.5
    # TensorBoard shows the first item: prediction = label = the L, so the overlay's L is yellow
    [events] = event_files(output)
    overlay = assert_overlay_images(events)["output_CHW"].astype(int)
    on_the_l = overlay[..., 1] - overlay[..., 2] >= 126
    assert on_the_l.sum() > 100 and np.array_equal(overlay[on_the_l][:, 0], overlay[on_the_l][:, 1])


def test_inference_writes_masks_of_the_trained_network_for_image_only_items(trained, corpus, tmp_path):
    png = load_datalist(corpus / "datalist.json", "test")[0]["image"]
    dicom = real_chest_dicom()
    datalist = tmp_path / "images.json"
    datalist.write_text(json.dumps({"test": [{"image": png}, {"image": str(dicom)}]}))
    result = run_bundle(tmp_path, "inference", ckpt_dir=trained.models, infer_datalist=datalist, num_workers=0)
    assert succeeded(result)
    written = {name: np.asarray(Image.open(tmp_path / "eval" / f"{Path(name).stem}_mask.png")) for name in (png, str(dicom))}
    assert written[str(dicom)].shape == read_display_intensities(dicom).shape
    for mask in written.values():
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    # the PNG is IMAGE_SIZE square: its mask is the trained network's thresholded output as it is
    checkpoint = load_checkpoint(trained.models / "model.pt")
    network = PretrainedUNet(decoder_channels=DECODER, img_size=IMAGE_SIZE)
    network.load_state_dict(checkpoint["model"])
    network.eval()
    with torch.no_grad():
        logits = network(chest_xray_transforms(image_size=IMAGE_SIZE)({"image": png})["image"][None])
    np.testing.assert_array_equal(written[png], np.where(torch.sigmoid(logits)[0, 0].numpy() >= 0.5, 255, 0))


def test_workflows_have_monai_properties_and_a_random_baseline(trained, corpus, tmp_path):
    folders = {"dataset_dir": corpus, "output_dir": tmp_path / "eval", "num_workers": 0}
    baseline = parsed_workflow(["train.json"], "train", pretrained_checkpoint="none", image_size=IMAGE_SIZE, ckpt_dir=tmp_path / "models", **folders)
    assert baseline.check_properties() == []
    network = baseline.parser.get_parsed_content("network_def")
    assert network.settings["image_encoder"] == {"backbone": "resnet18", "img_size": IMAGE_SIZE, "in_channels": 1, "vit_config": None, "imagenet_input": False}
    # frozen by default, random or not: the optimizer holds exactly the decoder's and the head's parameters
    optimized = {id(parameter) for group in baseline.parser.get_parsed_content("optimizer").param_groups for parameter in group["params"]}
    trained_names = {name for name, parameter in network.named_parameters() if id(parameter) in optimized}
    assert trained_names == {name for name, _ in network.named_parameters() if not name.startswith(UNET_ENCODER_PREFIX)}
    assert not any(parameter.requires_grad for parameter in network.encoder.parameters())
    for configs in (["inference.json"], ["inference.json", "evaluate.json"]):
        assert parsed_workflow(configs, "infer", ckpt_dir=trained.models, **folders).check_properties() == []


def test_metadata_network_and_export_from_inference_json_alone(trained, tmp_path):
    assert_metadata_valid(CONFIGS, tmp_path)
    assert_network_matches_metadata(CONFIGS, tmp_path, bundle_root=BUNDLE, ckpt_dir=trained.models)
    scripted = export_inference_network(CONFIGS, tmp_path, trained.models / "model.pt", IMAGE_SIZE, bundle_root=BUNDLE, ckpt_dir=trained.models)
    eager = PretrainedUNet(decoder_channels=DECODER, img_size=IMAGE_SIZE)
    eager.load_state_dict(load_checkpoint(trained.models / "model.pt")["model"])
    eager.eval()
    image = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(image), eager(image))
