"""Tiny stand-ins for the public datasets' downloads, in the layouts the prepare_* functions read:
the COVIDx list files, RSNA Pneumonia and SIIM-ACR Pneumothorax (DICOM images with boxes / RLE
masks), MIMIC-CXR-JPG (tables, JPEGs, report files) and CheXpert (label tables). The `rsna`,
`siim` and `mimic` fixtures (shared_fixtures.py) write theirs into a test's own folder."""

import csv
import gzip

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from reclf_monai.data.preparation.chexpert import COMPETITION_CLASSES, OBSERVATIONS
from reclf_monai.data.preparation.masks import boxes_to_mask
from reclf_monai.data.preparation.rle import encode_rle


def write_csv(path, header, rows, compress=False):
    opener = gzip.open if compress else open
    with opener(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


# ---------------------------------------------------------------- COVIDx

# (patient_id, filename, class, source); the source column is absent in older releases, and
# the 7A/8A lists have patient ids with a space ("COVID 6").
COVIDX_TRAIN = [
    ("1", "a.png", "normal", "rsna"),
    ("2", "b.png", "pneumonia", "rsna"),
    ("3", "SARS-10.1148rg.242035193-g04mr34g0-Fig8a-day0.jpeg", "COVID-19", "cohen"),
    ("4", "d.jpg", "covid-19", "actualmed"),
    ("5", "e.png", "Pneumonia", "sirm"),
    ("COVID 6", "COVID(6).png", "COVID-19", "sirm"),
    ("7", "g.png", "normal", None),
    ("8", "h.png", "pneumonia", "rsna"),
    ("9", "i.png", "normal", "rsna"),
    ("COVID 10", "COVID(10).png", "COVID-19", None),
]
COVIDX_TEST = [("20", "t1.png", "NORMAL", "rsna"), ("COVID 70", "COVID(70).png", "COVID-19", "sirm"),
               ("22", "t3.png", "pneumonia", "rsna")]  # fmt: skip


def covidx_list(entries):
    """The list file's text, ending in a blank line as some releases do."""
    return "\n".join(" ".join(field for field in entry if field) for entry in entries) + "\n\n"


# ---------------------------------------------------------------- RSNA Pneumonia and SIIM-ACR Pneumothorax

RSNA_SIIM_SHAPE = (12, 16)  # rows != columns, so a transposed mask cannot pass


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


def write_rsna_layout(root):
    """stage_2_train_labels.csv and stage_2_train_images/*.dcm of RSNA_BOXES under `root`."""
    rows = []
    for patient, boxes in RSNA_BOXES.items():
        rows += [(patient, *box, 1) for box in boxes] or [(patient, "", "", "", "", 0)]
        write_dicom(root / "stage_2_train_images" / f"{patient}.dcm", boxes_to_mask(boxes, RSNA_SIIM_SHAPE), f"1.2.{patient[1]}")
    write_csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], rows)
    return root


def siim_masks():
    """ImageId -> list of row masks (several rows: several regions; none: negative)."""
    masks = {}
    for index in range(20):
        regions = []
        if index % 4 == 0:  # 5 positives
            region = np.zeros(RSNA_SIIM_SHAPE, dtype=bool)
            region[index % 5 : index % 5 + 3, 1 + index % 7] = True  # an "L": vertical bar ...
            region[index % 5 + 2, 2 + index % 7] = True  # ... and its foot
            regions.append(region)
        if index == 8:  # a second region in a second row
            second = np.zeros(RSNA_SIIM_SHAPE, dtype=bool)
            second[10:12, 12:16] = True
            regions.append(second)
        masks[f"1.2.276.0.7230010.3.1.4.8323329.{index}.1517875160.1"] = regions
    return masks


def write_siim_layout(root):
    """train-rle.csv and dicom-images-train/**/*.dcm of siim_masks() under `root`, as Kaggle ships them."""
    rows = []
    for number, (image_id, regions) in enumerate(siim_masks().items()):
        rows += [(image_id, f" {encode_rle(region)}") for region in regions] or [(image_id, " -1")]
        union = np.logical_or.reduce(regions) if regions else np.zeros(RSNA_SIIM_SHAPE, dtype=bool)
        folder = root / "dicom-images-train" / f"1.2.{number}" / f"1.3.{number}"
        write_dicom(folder / f"{image_id}.dcm", union, image_id)
    with (root / "train-rle.csv").open("w") as handle:  # the official header has a space
        handle.write("ImageId, EncodedPixels\n" + "".join(f"{i},{p}\n" for i, p in rows))
    return root


# ---------------------------------------------------------------- MIMIC-CXR-JPG

# (dicom_id, subject_id, study_id, ViewPosition, official split)
MIMIC_IMAGES = [
    ("d1", "10000032", "50000001", "PA", "train"),
    ("d2", "10000032", "50000001", "LATERAL", "train"),
    ("d3", "10000032", "50000002", "AP", "train"),
    ("d4", "10000032", "50000003", "PA", "train"),  # report without FINDINGS / IMPRESSION
    ("d5", "10000032", "50000004", "PA", "train"),  # no report file
    ("d6", "11000011", "51000001", "PA", "validate"),
    ("d7", "12000012", "52000001", "AP", "test"),
    ("d8", "12000012", "52000001", "LL", "test"),
    # findings or impression only under headers other than FINDINGS / IMPRESSION
    ("d9", "10000032", "50000005", "PA", "train"),
    ("d10", "10000032", "50000006", "PA", "train"),
    ("d11", "13000013", "53000001", "AP", "train"),
    ("d12", "11000011", "51000002", "PA", "validate"),
    ("d13", "12000012", "52000002", "AP", "test"),
]
MIMIC_FINAL = "                                 FINAL REPORT\n"  # first line of every MIMIC-CXR report file
MIMIC_REPORTS = {
    "50000001": "EXAMINATION: CHEST PA AND LAT\n\nFINDINGS:\n There is a small left\n pleural effusion.\n"
    "\n IMPRESSION:  Small left effusion, ___ informed.\n",
    "50000002": "INDICATION: ___ with cough\n\nIMPRESSION: No acute cardiopulmonary process.\n",
    "50000003": "INDICATION: Fever.\n\nCOMPARISON: None.\n",
    "51000001": "FINDINGS: Heart size is normal.\nIMPRESSION: Normal chest.\n",
    "52000001": "Findings : Right upper lobe opacity.\n",
    "50000005": MIMIC_FINAL + " INDICATION:  Dyspnea.\n\n CHEST, TWO VIEWS:  The heart is mildly enlarged.\n\n"
    " IMPRESSION:  Mild cardiomegaly.\n",
    "50000006": MIMIC_FINAL + " HISTORY:  Cough.\n\n PA AND LATERAL VIEWS OF THE CHEST:  Lungs are clear.\n",
    "53000001": MIMIC_FINAL + " REASON FOR EXAMINATION:  Fever.\n\n FINDINGS AND IMPRESSION:  Right lower lobe pneumonia.\n",
    "51000002": MIMIC_FINAL + " COMPARISON:  None.\n\n FINDINGS/IMPRESSION:  No acute process.\n",
    "52000002": MIMIC_FINAL + " PORTABLE AP CHEST:  Line ends in the SVC.\n\n IMPRESSOIN:  Line in place.\n",
}


def write_mimic_layout(root):
    """The metadata, split and CheXpert-label tables, JPEGs and report files of MIMIC_IMAGES and
    MIMIC_REPORTS under `root` (made here)."""
    root.mkdir()
    write_csv(
        root / "mimic-cxr-2.0.0-metadata.csv.gz",
        ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns"],
        [(d, s, st, "CHEST (PA AND LAT)", view, 3, 4) for d, s, st, view, _ in MIMIC_IMAGES],
        compress=True,
    )
    write_csv(
        root / "mimic-cxr-2.0.0-split.csv",
        ["dicom_id", "study_id", "subject_id", "split"],
        [(d, st, s, split) for d, s, st, _, split in MIMIC_IMAGES],
    )
    labels = {"50000001": {"Pleural Effusion": "1.0", "Edema": "-1.0"}, "51000001": {"No Finding": "1.0"}}
    write_csv(
        root / "mimic-cxr-2.0.0-chexpert.csv",
        ["subject_id", "study_id", *OBSERVATIONS],
        [(s, st, *(labels.get(st, {}).get(name, "") for name in OBSERVATIONS)) for _, s, st, _, _ in MIMIC_IMAGES],
    )
    for d, s, st, _, _ in MIMIC_IMAGES:
        folder = root / "files" / f"p{s[:2]}" / f"p{s}" / f"s{st}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 3)).save(folder / f"{d}.jpg")
        if st in MIMIC_REPORTS:
            (folder.parent / f"s{st}.txt").write_text(MIMIC_REPORTS[st])
    return root


# ---------------------------------------------------------------- CheXpert

CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]
CHEXPERT_CANDIDATES_PER_CLASS = 6


def chexpert_row(path, view="Frontal", **labels):
    values = {name.replace(" ", "_"): value for name, value in labels.items()}
    return [path, "Female", "60", view, "AP" if view == "Frontal" else "",
            *(values.get(name.replace(" ", "_"), "") for name in OBSERVATIONS)]  # fmt: skip


def chexpert_train_rows():
    rows, patient = [], 0

    def path(view="frontal", image="study1/view1"):
        """A new patient's first image, or with `image` another image of the last patient."""
        nonlocal patient
        patient += image == "study1/view1"
        return f"CheXpert-v1.0-small/train/patient{patient:05d}/{image}_{view}.jpg"

    for name in COMPETITION_CLASSES:  # eligible for 5x200: the only positive, others 0.0 or blank
        for i in range(CHEXPERT_CANDIDATES_PER_CLASS):
            rows.append(chexpert_row(path(), **{name.replace(" ", "_"): "1.0", "No_Finding": "" if i % 2 else "0.0"}))
            rows.append(chexpert_row(path(image="study2/view1"), No_Finding="1.0"))  # a later study, not eligible
    rows.append(chexpert_row(path(), Atelectasis="1.0", Edema="1.0"))  # two positives
    rows.append(chexpert_row(path(), Cardiomegaly="1.0", Support_Devices="1.0"))  # eligible only by the loose rule
    rows.append(chexpert_row(path(), Consolidation="1.0", Lung_Opacity="-1.0"))  # uncertain other observation
    rows.append(chexpert_row(path(), Pleural_Effusion="1.0", Atelectasis="-1.0"))  # uncertain competition class
    rows.append(chexpert_row(path("lateral"), "Lateral", Edema="1.0"))  # lateral view
    rows.append(chexpert_row(path(), Atelectasis="-1.0", Cardiomegaly="-1.0", Consolidation="-1.0", Edema="-1.0",
                             Pleural_Effusion="-1.0"))  # all uncertain  # fmt: skip
    for i in range(12):  # patients with one or two frontal images and a lateral one
        rows.append(chexpert_row(path(), No_Finding="1.0"))
        rows.append(chexpert_row(path("lateral", "study1/view2"), "Lateral", No_Finding="1.0"))
        if i % 2:
            rows.append(chexpert_row(path(image="study2/view1"), No_Finding="1.0"))
    return rows


def write_chexpert_csv(path, rows, header=CHEXPERT_HEADER):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
