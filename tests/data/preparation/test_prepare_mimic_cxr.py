import json
import logging

import pytest
from dataset_layouts import write_csv
from repository import load_script

from reclf_monai.data.datalist import load_datalist
from reclf_monai.data.errors import DataError
from reclf_monai.data.preparation.mimic_cxr import prepare_mimic_cxr

EXPECTED_REPORTS = {
    "d1": "There is a small left pleural effusion. Small left effusion, informed.",
    "d3": "No acute cardiopulmonary process.",
    "d6": "Heart size is normal. Normal chest.",
    "d7": "Right upper lobe opacity.",
    "d9": "The heart is mildly enlarged. Mild cardiomegaly.",
    "d10": "Lungs are clear.",
    "d11": "Right lower lobe pneumonia.",
    "d12": "No acute process.",
    "d13": "Line ends in the SVC. Line in place.",
}
# dataset_layouts.MIMIC_REPORTS as a sectioned CSV (study, impression, findings); for the texts in the
# layout of the report files (MIMIC_FINAL + ...), these are the values the MIMIC-CXR code's create_section_files.py writes.
SECTIONED = [
    ("s50000001", "Small left effusion, ___ informed.", "There is a small left\n pleural effusion."),
    ("s50000002", "No acute cardiopulmonary process.", ""),
    ("s50000003", "", ""),
    ("s51000001", "Normal chest.", "Heart size is normal."),
    ("s52000001", "", "Right upper lobe opacity."),
    ("s50000005", "Mild cardiomegaly.", "The heart is mildly enlarged."),
    ("s50000006", "", "Lungs are clear."),
    ("s53000001", "Right lower lobe pneumonia.", ""),
    ("s51000002", "No acute process.", ""),
    ("s52000002", "Line in place.", "Line ends in the SVC."),
]


def test_frontal_reports_official_split_and_counts(mimic, tmp_path):
    output = tmp_path / "out"
    report = prepare_mimic_cxr(mimic, output)
    counts = report.counts
    assert counts["non_frontal_dropped"] == 2
    assert counts["empty_report_dropped"] == 1 and counts["empty_report_studies"] == 1
    assert counts["no_report_dropped"] == 1
    assert (counts["training"], counts["validation"], counts["test"]) == (5, 2, 2)
    dropped = sum(counts[k] for k in ("non_frontal_dropped", "no_report_dropped", "empty_report_dropped",
                                      "missing_images_skipped"))
    assert counts["metadata_images"] == dropped + counts["training"] + counts["validation"] + counts["test"]
    assert "empty_report_dropped=1" in report.statistics_line()

    content = json.loads((output / "mimic_cxr.json").read_text())
    items = {item["dicom_id"]: item for split in ("training", "validation", "test") for item in content[split]}
    assert set(items) == set(EXPECTED_REPORTS)
    assert {d: item["report"] for d, item in items.items()} == EXPECTED_REPORTS
    assert [item["dicom_id"] for item in content["validation"]] == ["d6", "d12"]
    assert items["d1"] | {"report": None} == {
        "image": "../mimic-cxr-jpg/files/p10/p10000032/s50000001/d1.jpg", "report": None,
        "subject_id": "10000032", "study_id": "50000001", "dicom_id": "d1", "view": "PA",
        "classes": ["Pleural Effusion"],
    }  # fmt: skip
    assert items["d6"]["classes"] == ["No Finding"]
    loaded = load_datalist(output / "mimic_cxr.json", "test")
    assert loaded[0]["image"] == str(mimic / "files" / "p12" / "p12000012" / "s52000001" / "d7.jpg")


def test_header_families_are_counted_per_section(mimic, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="reclf_monai.data.preparation.mimic_cxr")
    counts = prepare_mimic_cxr(mimic, tmp_path / "out").counts
    assert {key: value for key, value in counts.items() if "_from_" in key} == {
        "findings_from_findings": 3, "findings_from_exam_title": 3, "findings_from_misspelt": 0,
        "impression_from_impression": 4, "impression_from_findings_and_impression": 2, "impression_from_misspelt": 1,
    }  # fmt: skip
    assert ("findings from exam_title headers: 3 studies (most frequent: 'CHEST, TWO VIEWS' 1, "
            "'PA AND LATERAL VIEWS OF THE CHEST' 1, 'PORTABLE AP CHEST' 1)") in caplog.messages


def test_script_prints_the_section_sources(mimic, tmp_path, capsys):
    status = load_script("prepare_mimic_cxr").main(["--root", str(mimic), "--output", str(tmp_path / "out")])
    assert status == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("mimic_cxr: metadata_images=13 ")
    assert "findings_from_exam_title=3 findings_from_misspelt=0 impression_from_impression=4" in line


def test_sectioned_csv_gives_the_same_reports(mimic, tmp_path):
    sectioned = tmp_path / "mimic_cxr_sectioned.csv"
    write_csv(sectioned, ["study", "impression", "findings", "last_paragraph", "comparison"],
              [(*row, "", "") for row in SECTIONED])
    report = prepare_mimic_cxr(mimic, tmp_path / "out", sectioned_csv=sectioned)
    content = json.loads((tmp_path / "out" / "mimic_cxr.json").read_text())
    items = {item["dicom_id"]: item["report"] for split in ("training", "validation", "test") for item in content[split]}
    assert items == EXPECTED_REPORTS
    assert report.counts["empty_report_dropped"] == 1 and report.counts["no_report_dropped"] == 1
    assert not any("_from_" in key for key in report.counts)  # the CSV does not say which header


def test_without_label_table_items_have_no_classes(mimic, tmp_path):
    (mimic / "mimic-cxr-2.0.0-chexpert.csv").unlink()
    prepare_mimic_cxr(mimic, tmp_path / "out")
    content = json.loads((tmp_path / "out" / "mimic_cxr.json").read_text())
    assert all("classes" not in item for item in content["training"])


def test_missing_split_column_names_file_and_column(mimic, tmp_path):
    write_csv(mimic / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id"], [("d1", "1", "2")])
    with pytest.raises(DataError, match=r"mimic-cxr-2.0.0-split.csv: missing column\(s\) \['split'\]"):
        prepare_mimic_cxr(mimic, tmp_path / "out")


def test_missing_image_stops_unless_skipped(mimic, tmp_path):
    (mimic / "files" / "p11" / "p11000011" / "s51000001" / "d6.jpg").unlink()
    with pytest.raises(DataError, match="d6.jpg: image not found"):
        prepare_mimic_cxr(mimic, tmp_path / "out")
    report = prepare_mimic_cxr(mimic, tmp_path / "out", skip_missing_images=True)
    assert report.counts["missing_images_skipped"] == 1 and report.counts["validation"] == 1


def test_reports_in_the_wrong_place_are_an_error(mimic, tmp_path):
    with pytest.raises(DataError, match="report file not found, and neither is any other"):
        prepare_mimic_cxr(mimic, tmp_path / "out", reports_root=tmp_path / "elsewhere")
