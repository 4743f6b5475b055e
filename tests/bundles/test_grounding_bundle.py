"""The reclf_grounding bundle: pointing game and CNR against hand-computed cases, phrase items and
regions, heatmap orientation from the word-to-region attention to the written files, and every
workflow through MONAI's bundle CLI on a tiny IU-Phantom with a tiny pretraining checkpoint. The
checks it shares with the other task bundles (metadata, MONAI's properties, the untrained baseline,
export) are in test_task_bundles.py."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bundle_testing import BUNDLES, pretrained_workflow, run_pretrained_bundle, succeeded, trained_model
from monai.data import MetaTensor
from PIL import Image
from sample_files import real_chest_dicom

from reclf_monai.data import (
    DataError,
    TokenizeReportd,
    chest_xray_transforms,
    finding_phrase,
    grounding_items,
    heatmap_overlay,
    load_datalist,
    phrase_items,
    write_heatmap_files,
)
from reclf_monai.data.image_loading import read_display_intensities
from reclf_monai.data.preparation.rsna_pneumonia import SEGMENTATION_DATALIST, prepare_rsna_pneumonia
from reclf_monai.metrics import (
    ContrastToNoiseRatioMetric,
    PointingGameMetric,
    contrast_to_noise_ratio,
    grounding_summary,
    pointing_game,
)
from reclf_monai.networks import LocalMatching, phrase_heatmap, phrase_heatmaps

pytestmark = pytest.mark.end_to_end

BUNDLE = BUNDLES / "reclf_grounding"
IMAGE_SIZE = 64


# ------------------------------------------------------------------ metrics, by hand


def as_batch(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float32))[None, None]


HEATMAP = as_batch([[0.1, 0.2, 0.3, 0.0], [0.0, 0.5, 0.9, 0.1], [0.0, 0.0, 0.2, 0.1]])  # maximum at row 1, column 2


def test_pointing_game_by_hand():
    around_peak = as_batch([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    beside_peak = as_batch([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert pointing_game(HEATMAP, around_peak).tolist() == [1.0]
    assert pointing_game(HEATMAP, beside_peak).tolist() == [0.0]
    # ties are held against the heatmap: every maximum must lie inside
    tied = as_batch([[0.9, 0.2, 0.3, 0.0], [0.0, 0.5, 0.9, 0.1], [0.0, 0.0, 0.2, 0.1]])
    assert pointing_game(tied, around_peak).tolist() == [0.0]
    flat = torch.ones_like(HEATMAP)
    assert pointing_game(flat, around_peak).tolist() == [0.0]
    assert pointing_game(flat, torch.ones_like(HEATMAP)).tolist() == [1.0]
    # a batch, and the metric's mean over two calls
    metric = PointingGameMetric()
    metric(torch.cat([HEATMAP, HEATMAP]), torch.cat([around_peak, beside_peak]))
    metric(HEATMAP, around_peak)
    assert metric.aggregate().item() == pytest.approx(2 / 3)
    assert metric.get_buffer().view(-1).tolist() == [1.0, 0.0, 1.0]


def test_contrast_to_noise_ratio_by_hand():
    heatmap = as_batch([[1.0, 2.0], [3.0, 4.0]])
    region = as_batch([[0, 0], [0, 1]])
    # inside {4}: mean 4, variance 0; outside {1, 2, 3}: mean 2, variance 2/3
    assert contrast_to_noise_ratio(heatmap, region).item() == pytest.approx(2 / math.sqrt(2 / 3))
    # a map lower inside the region scores below zero; scaling and shifting change nothing
    assert contrast_to_noise_ratio(heatmap, as_batch([[1, 0], [0, 0]])).item() == pytest.approx(-2 / math.sqrt(2 / 3))
    assert contrast_to_noise_ratio(3 * heatmap + 5, region).item() == pytest.approx(2 / math.sqrt(2 / 3))
    # inside {3, 4}: mean 3.5, variance 1/4; outside {1, 2}: mean 1.5, variance 1/4
    assert contrast_to_noise_ratio(heatmap, as_batch([[0, 0], [1, 1]])).item() == pytest.approx(2 / math.sqrt(0.5))
    two_levels = as_batch([[1.0, 1.0], [4.0, 4.0]])
    assert contrast_to_noise_ratio(two_levels, as_batch([[0, 0], [1, 1]])).item() == math.inf
    assert contrast_to_noise_ratio(torch.ones(1, 1, 2, 2), as_batch([[0, 0], [1, 1]])).item() == 0.0
    assert math.isnan(contrast_to_noise_ratio(heatmap, torch.zeros_like(heatmap)).item())
    assert math.isnan(contrast_to_noise_ratio(heatmap, torch.ones_like(heatmap)).item())
    # the metric takes lists of pairs of different sizes (images of several sizes) and leaves NaN out
    metric = ContrastToNoiseRatioMetric()
    metric([heatmap[0], HEATMAP[0], heatmap[0]], [region[0], torch.zeros_like(HEATMAP[0]), as_batch([[0, 0], [1, 1]])[0]])
    assert metric.aggregate().item() == pytest.approx((2 / math.sqrt(2 / 3) + 2 / math.sqrt(0.5)) / 2)


def test_grounding_summary_groups_and_chance_level():
    items = [
        {"group": "Pleural Effusion (left)", "region_fraction": 0.1},
        {"group": "Pleural Effusion (left)", "region_fraction": 0.3},
        {"group": "Cardiomegaly", "region_fraction": 0.2},
    ]
    details = {"pointing_game": torch.tensor([[1.0], [0.0], [1.0]]), "cnr": torch.tensor([[0.5], [float("nan")], [-1.0]])}
    summary = grounding_summary(items, details)
    assert list(summary) == ["all", "Cardiomegaly", "Pleural Effusion (left)"]
    assert summary["all"] == pytest.approx({"pointing_game": 2 / 3, "cnr": -0.25, "findings": 3, "region_fraction": 0.2})
    assert summary["Pleural Effusion (left)"] == pytest.approx({"pointing_game": 0.5, "cnr": 0.5, "findings": 2, "region_fraction": 0.2})
    with pytest.raises(ValueError, match="2 values for 3 items"):
        grounding_summary(items, {"cnr": torch.zeros(2, 1)})


# ------------------------------------------------------------------ items and regions


def test_phrases_from_findings_and_regions_from_box_and_mask(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[2:8, 3:9] = 255  # the left effusion, drawn
    mask[10:12, 20:28] = 255  # another finding's pixels
    Image.fromarray(mask).save(tmp_path / "mask.png")
    findings = [
        {"type": "Pleural Effusion", "side": "left", "bbox": [3, 2, 9, 8]},
        {"type": "Cardiomegaly", "side": None, "bbox": [0, 0, 30, 10]},  # its box also holds the effusion's pixels
        {"type": "Hyperinflation", "side": None, "bbox": None},
    ]
    item = {"image": str(tmp_path / "image.png"), "label": str(tmp_path / "mask.png"), "findings": findings}
    assert finding_phrase(findings[0]) == "left pleural effusion" and finding_phrase(findings[1]) == "cardiomegaly"
    phrases = phrase_items([item])
    assert [(entry["phrase"], entry["group"], entry["item_index"]) for entry in phrases] == [
        ("left pleural effusion", "Pleural Effusion (left)", 0),
        ("cardiomegaly", "Cardiomegaly", 1),
        ("hyperinflation", "Hyperinflation", 2),
    ]
    kept = grounding_items(phrases, tmp_path / "regions")
    assert [entry["phrase"] for entry in kept] == ["left pleural effusion", "cardiomegaly"]  # no box, no region
    effusion = read_display_intensities(kept[0]["region"]) > 0
    expected = np.zeros((20, 30), bool)
    expected[2:8, 3:9] = True
    np.testing.assert_array_equal(effusion, expected)
    assert kept[0]["region_fraction"] == pytest.approx(36 / 600)
    np.testing.assert_array_equal(read_display_intensities(kept[1]["region"]) > 0, expected)  # box cut by the mask

    # one phrase for every item, the region is the mask; empty masks are left out
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(empty)
    masks = [{"image": "a.dcm", "label": str(tmp_path / "mask.png")}, {"image": "b.dcm", "label": str(empty)}]
    kept = grounding_items(phrase_items(masks, "pneumonia"), tmp_path / "regions")
    assert [(entry["image"], entry["region"], entry["group"]) for entry in kept] == [("a.dcm", str(tmp_path / "mask.png"), "pneumonia")]
    with pytest.raises(DataError, match="b.dcm: item 0 has no phrase and no findings"):
        phrase_items([{"image": "b.dcm"}])


# ------------------------------------------------------------------ heatmap orientation


def asymmetric_features(rows: int = 3, columns: int = 4, peak: tuple[int, int] = (1, 3)):
    """Patch features on a rows x columns grid where only the patch at `peak` points along the
    phrase's one word: the word's attention, and so the heatmap, peaks there."""
    patches = torch.tensor([0.0, 1.0]).repeat(rows * columns, 1)
    patches[peak[0] * columns + peak[1]] = torch.tensor([1.0, 0.0])
    image = {"patches": patches[None], "patch_map": patches.T.reshape(1, 2, rows, columns)}
    text = {"tokens": torch.tensor([[[1.0, 0.0]]]), "word_mask": torch.tensor([[True]])}
    return image, text


def test_heatmap_peaks_at_the_attended_patch_in_row_major_order():
    image, text = asymmetric_features()
    stub = SimpleNamespace(local_matching=LocalMatching(2, "mean"), aggregation="mean")
    heatmap = phrase_heatmaps(stub, image, text)[0]
    assert heatmap.shape == (3, 4)
    assert np.unravel_index(int(heatmap.argmax()), heatmap.shape) == (1, 3)
    assert heatmap.sum().item() == pytest.approx(1.0)

    # upsampled to a 48 x 64 image: the peak lies in that patch's 16 x 16 pixels
    stub.encode_image = lambda pixels: image
    stub.encode_text = lambda input_ids, attention_mask: text
    upsampled = phrase_heatmap(stub, torch.zeros(1, 1, 48, 64), torch.zeros(1, 1, dtype=torch.long))[0, 0]
    row, column = np.unravel_index(int(upsampled.argmax()), upsampled.shape)
    assert 16 <= row < 32 and 48 <= column < 64

    with pytest.raises(ValueError, match="'global_only' has no local scorer"):
        phrase_heatmaps(SimpleNamespace(local_matching=None, aggregation="global_only"), image, text)


def test_overlay_and_nifti_keep_the_image_orientation(tmp_path):
    image = np.zeros((40, 100), np.uint8)
    image[5:12, 75:85] = 255
    Image.fromarray(image).save(tmp_path / "image.png")
    heatmap = np.zeros((40, 100), np.float32)
    heatmap[8, 80] = 1.0
    overlay_file, nifti_file = write_heatmap_files(heatmap, tmp_path / "image.png", tmp_path / "out" / "stem")
    np.testing.assert_array_equal(read_display_intensities(nifti_file), heatmap)
    overlay = np.asarray(Image.open(overlay_file))
    assert overlay.shape == (40, 100, 3)
    redness = overlay[..., 0].astype(int) - overlay[..., 2].astype(int)
    assert np.unravel_index(int(redness.argmax()), redness.shape) == (8, 80)
    np.testing.assert_array_equal(heatmap_overlay(image / 255.0, np.zeros_like(heatmap))[..., 0], image)  # flat map: the image
    with pytest.raises(DataError, match="not aligned"):
        write_heatmap_files(heatmap.T.copy(), tmp_path / "image.png", tmp_path / "out" / "wrong")


# ------------------------------------------------------------------ the bundle


# bundle_testing's runs of a bundle on a pretraining checkpoint, for this bundle
run_bundle = partial(run_pretrained_bundle, BUNDLE)
workflow = partial(pretrained_workflow, BUNDLE)


def test_evaluate_scores_each_findings_heatmap_against_its_region(corpus, checkpoint, tmp_path):
    result = run_bundle(tmp_path, corpus, checkpoint, "inference", "evaluate")
    assert succeeded(result)
    assert not list(tmp_path.rglob("events.out.tfevents.*"))  # evaluation only: no TensorBoard (docs/tensorboard.md)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    regions = sorted((tmp_path / "eval" / "regions").glob("*_region.png"))
    assert metrics["all"]["findings"] == len(regions) > 10
    assert set(metrics) > {"all", "Opacity (right)"}
    assert sum(section["findings"] for name, section in metrics.items() if name != "all") == len(regions)

    # the same pointing game and CNR computed here (64-pixel images at the network's 64 pixels:
    # the heatmap needs no resizing back)
    model, tokenize = trained_model(checkpoint), TokenizeReportd("phrase", max_length=48)
    images = chest_xray_transforms(image_size=IMAGE_SIZE)
    items = grounding_items(phrase_items(load_datalist(corpus / "datalist.json", "test")), tmp_path / "here")
    hits, contrasts = [], []
    for item in items:
        tokens = tokenize(item)
        heatmap = phrase_heatmap(model, images(item)["image"].as_tensor()[None], tokens["input_ids"][None], tokens["attention_mask"][None])
        region = torch.as_tensor(read_display_intensities(item["region"]) >= 0.5)[None, None]
        hits.append(pointing_game(heatmap, region).item())
        contrasts.append(contrast_to_noise_ratio(heatmap, region).item())
    assert metrics["all"]["pointing_game"] == pytest.approx(np.mean(hits), abs=1e-6)
    assert metrics["all"]["cnr"] == pytest.approx(np.nanmean(contrasts), abs=1e-4)
    assert metrics["all"]["region_fraction"] == pytest.approx(np.mean([item["region_fraction"] for item in items]))


def test_evaluate_on_rsna_boxes_with_the_phrase_pneumonia(rsna, corpus, checkpoint, tmp_path):
    """The segmentation datalist that scripts/prepare_rsna.py writes (DICOMs of 12 x 16 pixels,
    box masks): heatmaps go back from the padded network input to the DICOM's rows and columns."""
    prepare_rsna_pneumonia(rsna, tmp_path / "data")
    datalist = tmp_path / "data" / SEGMENTATION_DATALIST
    split = max(("training", "validation", "test"), key=lambda name: sum(item["target"] for item in load_datalist(datalist, name)))
    positives = sum(item["target"] for item in load_datalist(datalist, split))
    result = run_bundle(tmp_path, corpus, checkpoint, "inference", "evaluate", eval_datalist=datalist, eval_split=split, phrase="pneumonia")
    assert succeeded(result)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"all", "pneumonia"}
    assert metrics["all"]["findings"] == positives >= 1
    assert 0 <= metrics["all"]["pointing_game"] <= 1 and math.isfinite(metrics["all"]["cnr"])


def test_inference_writes_an_overlay_and_a_nifti_per_image_and_phrase(corpus, checkpoint, tmp_path):
    """inference.json alone on a datalist of a real DICOM and a phantom PNG, each with its phrase."""
    png = load_datalist(corpus / "datalist.json", "test")[0]["image"]
    items = [{"image": str(real_chest_dicom()), "phrase": "right lower lobe opacity"}, {"image": png, "phrase": "cardiomegaly"}]
    datalist = tmp_path / "phrases.json"
    datalist.write_text(json.dumps({"test": items}))
    result = run_bundle(tmp_path, corpus, checkpoint, "inference", infer_datalist=datalist)
    assert succeeded(result)
    folder = tmp_path / "eval" / "heatmaps"
    for stem, item in zip(("0000_RG1_UNCI_right_lower_lobe_opacity", f"0001_{Path(png).stem}_cardiomegaly"), items):
        image = read_display_intensities(item["image"])
        heatmap = read_display_intensities(folder / f"{stem}_heatmap.nii.gz")
        assert heatmap.shape == image.shape and heatmap.min() >= 0 and heatmap.max() > 0
        assert np.asarray(Image.open(folder / f"{stem}_overlay.png")).shape == (*image.shape, 3)


class ImageAsHeatmap:
    """A stand-in for the heatmap inferer: the preprocessed image is its own heatmap, so the written
    heatmap must peak where the image file is brightest if every step keeps the orientation."""

    def __call__(self, inputs, network, input_ids=None, attention_mask=None):
        return MetaTensor(inputs.as_tensor())


def test_written_heatmap_lands_on_the_image_through_the_bundles_own_steps(corpus, checkpoint, tmp_path):
    """An image taller than wide with a bright spot near the top right: resized and padded for the
    network, the heatmap goes back through the bundle's postprocessing to the file's pixels."""
    image = np.full((100, 40), 20, np.uint8)
    image[8:13, 30:35] = 255  # rows 8-12, columns 30-34
    Image.fromarray(image).save(tmp_path / "tall.png")
    flow = workflow(corpus, checkpoint, tmp_path, "inference", image_file=str(tmp_path / "tall.png"), phrase="nodule", inferer=ImageAsHeatmap())
    flow.initialize()
    flow.run()
    heatmap = read_display_intensities(tmp_path / "eval" / "heatmaps" / "0000_tall_nodule_heatmap.nii.gz")
    assert heatmap.shape == (100, 40)
    row, column = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    assert 7 <= row <= 13 and 29 <= column <= 35
    overlay = np.asarray(Image.open(tmp_path / "eval" / "heatmaps" / "0000_tall_nodule_overlay.png")).astype(int)
    row, column = np.unravel_index(int((overlay[..., 0] - overlay[..., 2]).argmax()), (100, 40))
    assert 7 <= row <= 13 and 29 <= column <= 35


def test_an_image_without_a_phrase_is_an_error(corpus, checkpoint, tmp_path):
    flow = workflow(corpus, checkpoint, tmp_path, "inference", image_file=str(tmp_path / "x.png"))
    with pytest.raises(RuntimeError) as raised:
        flow.parser.get_parsed_content("infer_items")
    assert isinstance(raised.value.__cause__, DataError) and "has no phrase and no findings" in str(raised.value.__cause__)
