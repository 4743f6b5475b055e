"""RSNA Pneumonia and SIIM-ACR Pneumothorax: DICOM images, masks written from boxes / RLE."""

import json

import numpy as np
import pytest
from dataset_layouts import RSNA_BOXES, RSNA_SIIM_SHAPE, siim_masks, write_dicom

from reclf_monai.data.datalist import load_datalist
from reclf_monai.data.errors import DataError
from reclf_monai.data.image_loading import read_display_intensities, read_image_2d
from reclf_monai.data.preparation.files import dicom_shape
from reclf_monai.data.preparation.rsna_pneumonia import prepare_rsna_pneumonia
from reclf_monai.data.preparation.siim_pneumothorax import prepare_siim_pneumothorax


def assert_masks_align_with_images(datalist, splits=("training", "validation", "test")):
    """Every mask has its image's size and is foreground exactly where the image is bright."""
    checked = 0
    for split in splits:
        for item in load_datalist(datalist, split):
            image, mask = read_image_2d(item["image"]), read_display_intensities(item["label"])
            assert mask.shape == image.shape == RSNA_SIIM_SHAPE
            np.testing.assert_array_equal(mask >= 0.5, image > 0.5)
            assert item["target"] == int(mask.any())
            checked += 1
    return checked


def test_dicom_shape_reads_rows_and_columns(tmp_path):
    write_dicom(tmp_path / "a.dcm", np.zeros(RSNA_SIIM_SHAPE, dtype=bool), "1.2.3")
    assert dicom_shape(tmp_path / "a.dcm") == RSNA_SIIM_SHAPE
    (tmp_path / "b.dcm").write_bytes(b"not a dicom")
    with pytest.raises(DataError, match="b.dcm: cannot be read as DICOM"):
        dicom_shape(tmp_path / "b.dcm")


# ---------------------------------------------------------------- RSNA Pneumonia


def test_rsna_classification_and_segmentation(rsna, tmp_path):
    output = tmp_path / "out"
    report = prepare_rsna_pneumonia(rsna, output)
    classification = json.loads((output / "rsna_pneumonia_classification.json").read_text())
    segmentation = json.loads((output / "rsna_pneumonia_segmentation.json").read_text())
    assert classification["class_names"] == segmentation["class_names"] == ["Normal", "Pneumonia"]
    # 70/15/15 and 60/20/20 of 8 patients as MGCA's train_test_split calls round them: 3 held out,
    # of which validation (the second part of the halving) gets ceil(1.5) = 2.
    assert [len(classification[s]) for s in ("training", "validation", "test")] == [5, 2, 1]
    assert [len(segmentation[s]) for s in ("training", "validation", "test")] == [4, 2, 2]
    targets = {item["image"].rsplit("/", 1)[1]: item["target"]
               for split in ("training", "validation", "test") for item in classification[split]}  # fmt: skip
    assert targets == {f"{p}.dcm": int(bool(b)) for p, b in RSNA_BOXES.items()}
    assert all(item["label"].startswith("masks/rsna_pneumonia/") for item in segmentation["training"])
    assert assert_masks_align_with_images(output / "rsna_pneumonia_segmentation.json") == 8
    assert report.counts["positive"] == 3 and report.counts["boxes"] == 4


def test_rsna_split_is_reproducible_and_seeded(rsna, tmp_path):
    prepare_rsna_pneumonia(rsna, tmp_path / "a")
    prepare_rsna_pneumonia(rsna, tmp_path / "b")
    prepare_rsna_pneumonia(rsna, tmp_path / "c", seed=5)
    files = [(tmp_path / d / "rsna_pneumonia_classification.json").read_text() for d in "abc"]
    assert files[0] == files[1] != files[2]


def test_rsna_bad_input(rsna, tmp_path):
    table = rsna / "stage_2_train_labels.csv"
    text = table.read_text()
    table.write_text(text.replace("p1,,,,,0", "p1,,,,,2"))
    with pytest.raises(DataError, match="patientId p1: Target is '2'"):
        prepare_rsna_pneumonia(rsna, tmp_path / "out")
    table.write_text(text.replace(",Target", ",Label"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['Target'\]"):
        prepare_rsna_pneumonia(rsna, tmp_path / "out")
    table.write_text(text)
    (rsna / "stage_2_train_images" / "p3.dcm").unlink()
    with pytest.raises(DataError, match="p3.dcm: image not found"):
        prepare_rsna_pneumonia(rsna, tmp_path / "out")
    report = prepare_rsna_pneumonia(rsna, tmp_path / "out", skip_missing_images=True)
    assert report.counts["missing_images_skipped"] == 1


# ---------------------------------------------------------------- SIIM-ACR Pneumothorax


def test_siim_masks_union_orientation_and_balanced_training(siim, tmp_path):
    output = tmp_path / "out"
    report = prepare_siim_pneumothorax(siim, output)
    content = json.loads((output / "siim_pneumothorax.json").read_text())
    assert content["class_names"] == ["Normal", "Pneumothorax"]
    assert report.counts["images"] == 20 and report.counts["positive"] == 5 and report.counts["multi_row_images"] == 1
    training = content["training"]
    positives = sum(item["target"] for item in training)
    assert positives >= 1 and len(training) == 2 * positives
    assert len(content["validation"]) == 3 and len(content["test"]) == 3
    assert report.counts["training_negatives_dropped"] == 14 - len(training)
    assert assert_masks_align_with_images(output / "siim_pneumothorax.json") == len(training) + 6
    two_regions = read_display_intensities(output / "masks" / "siim_pneumothorax" / f"{list(siim_masks())[8]}.png")
    assert two_regions[10:12, 12:16].all() and two_regions.astype(bool).sum() == 4 + 8


def test_siim_keep_all_negatives(siim, tmp_path):
    prepare_siim_pneumothorax(siim, tmp_path / "out", balance_training=False)
    content = json.loads((tmp_path / "out" / "siim_pneumothorax.json").read_text())
    assert len(content["training"]) == 14


def test_siim_bad_rle_and_missing_dicom(siim, tmp_path):
    table = siim / "train-rle.csv"
    lines = table.read_text().splitlines()
    image_id = lines[1].split(",")[0]
    table.write_text("\n".join([lines[0], f"{image_id}, 5 3 2", *lines[2:]]))
    with pytest.raises(DataError, match=f"train-rle.csv: ImageId {image_id}: RLE needs"):
        prepare_siim_pneumothorax(siim, tmp_path / "out")
    table.write_text("\n".join(lines))
    missing = next((siim / "dicom-images-train").rglob("*.dcm"))
    missing.unlink()
    with pytest.raises(DataError, match="image not found"):
        prepare_siim_pneumothorax(siim, tmp_path / "out")
    report = prepare_siim_pneumothorax(siim, tmp_path / "out", skip_missing_images=True)
    assert report.counts["missing_images_skipped"] == 1
