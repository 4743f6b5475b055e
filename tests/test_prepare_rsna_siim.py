"""RSNA Pneumonia and SIIM-ACR Pneumothorax: DICOM images, masks written from boxes / RLE."""

import csv
import json

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from reclf_monai.data.datalist import load_datalist
from reclf_monai.data.errors import DataError
from reclf_monai.data.image_loading import read_display_intensities, read_image_2d
from reclf_monai.data.preparation.files import dicom_shape
from reclf_monai.data.preparation.masks import boxes_to_mask
from reclf_monai.data.preparation.rle import encode_rle
from reclf_monai.data.preparation.rsna_pneumonia import prepare_rsna_pneumonia
from reclf_monai.data.preparation.siim_pneumothorax import prepare_siim_pneumothorax

SHAPE = (12, 16)  # rows != columns, so a transposed mask cannot pass


def write_dicom(path, mask, uid):
    """A MONOCHROME2 CR image: 100 outside `mask`, 1000 inside, so its bright pixels mark the mask."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID, dataset.Modality = meta.MediaStorageSOPClassUID, uid, "CR"
    dataset.Rows, dataset.Columns = mask.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    dataset.PixelData = np.where(mask, 1000, 100).astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)


def write_csv(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def assert_masks_align_with_images(datalist, splits=("training", "validation", "test")):
    """Every mask has its image's size and is foreground exactly where the image is bright."""
    checked = 0
    for split in splits:
        for item in load_datalist(datalist, split):
            image, mask = read_image_2d(item["image"]), read_display_intensities(item["label"])
            assert mask.shape == image.shape == SHAPE
            np.testing.assert_array_equal(mask >= 0.5, image > 0.5)
            assert item["target"] == int(mask.any())
            checked += 1
    return checked


def test_dicom_shape_reads_rows_and_columns(tmp_path):
    write_dicom(tmp_path / "a.dcm", np.zeros(SHAPE, dtype=bool), "1.2.3")
    assert dicom_shape(tmp_path / "a.dcm") == SHAPE
    (tmp_path / "b.dcm").write_bytes(b"not a dicom")
    with pytest.raises(DataError, match="b.dcm: cannot be read as DICOM"):
        dicom_shape(tmp_path / "b.dcm")


# ---------------------------------------------------------------- RSNA Pneumonia

RSNA_BOXES = {  # patientId -> boxes (x, y, width, height); several rows for several boxes
    "p0": [(2.0, 1.0, 5.0, 3.0)],
    "p1": [],
    "p2": [(0.0, 6.0, 4.0, 6.0), (10.0, 2.0, 6.0, 4.0)],
    "p3": [],
    "p4": [],
    "p5": [(13.0, 9.0, 3.0, 3.0)],
    "p6": [],
    "p7": [],
}


@pytest.fixture
def rsna(tmp_path):
    root = tmp_path / "rsna"
    rows = []
    for patient, boxes in RSNA_BOXES.items():
        rows += [(patient, *box, 1) for box in boxes] or [(patient, "", "", "", "", 0)]
        write_dicom(root / "stage_2_train_images" / f"{patient}.dcm", boxes_to_mask(boxes, SHAPE), f"1.2.{patient[1]}")
    write_csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], rows)
    return root


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


def siim_masks():
    """ImageId -> list of row masks (several rows: several regions; none: negative)."""
    masks = {}
    for index in range(20):
        regions = []
        if index % 4 == 0:  # 5 positives
            region = np.zeros(SHAPE, dtype=bool)
            region[index % 5 : index % 5 + 3, 1 + index % 7] = True  # an "L": vertical bar ...
            region[index % 5 + 2, 2 + index % 7] = True  # ... and its foot
            regions.append(region)
        if index == 8:  # a second region in a second row
            second = np.zeros(SHAPE, dtype=bool)
            second[10:12, 12:16] = True
            regions.append(second)
        masks[f"1.2.276.0.7230010.3.1.4.8323329.{index}.1517875160.1"] = regions
    return masks


@pytest.fixture
def siim(tmp_path):
    root = tmp_path / "siim"
    rows = []
    for number, (image_id, regions) in enumerate(siim_masks().items()):
        rows += [(image_id, f" {encode_rle(region)}") for region in regions] or [(image_id, " -1")]
        union = np.logical_or.reduce(regions) if regions else np.zeros(SHAPE, dtype=bool)
        folder = root / "dicom-images-train" / f"1.2.{number}" / f"1.3.{number}"
        write_dicom(folder / f"{image_id}.dcm", union, image_id)
    with (root / "train-rle.csv").open("w") as handle:  # the official header has a space
        handle.write("ImageId, EncodedPixels\n" + "".join(f"{i},{p}\n" for i, p in rows))
    return root


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
