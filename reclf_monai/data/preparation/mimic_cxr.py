"""MIMIC-CXR-JPG 2.x images + MIMIC-CXR reports -> the pretraining datalist.

Protocol (MGCA / GLoRIA pretraining): frontal views only (``ViewPosition`` PA or AP); the
report is FINDINGS followed by IMPRESSION; images whose report has neither section are
dropped (and counted: MGCA issue #42 reports more than 9,000 such rows); the official split
(``train`` / ``validate`` / ``test`` -> ``training`` / ``validation`` / ``test``). MGCA merges
validate and test; we keep the official three. Sections of the report files are found with the
header rules of the official sectioning (:mod:`reclf_monai.data.report_sections`), so report
files and the official sectioned CSV give the same reports; the statistics count, per section,
the studies whose text came from each header family.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..datalist import write_datalist
from ..errors import DataError
from ..report_sections import SECTION_SOURCES, SECTIONS, find_sections
from ..report_text import compose_report
from .chexpert import OBSERVATIONS
from .files import find_missing, relative_path, require_folder
from .reporting import PreparationReport, progress
from .tables import locate_table, read_table

logger = logging.getLogger(__name__)

METADATA_TABLE = "mimic-cxr-2.0.0-metadata.csv"
SPLIT_TABLE = "mimic-cxr-2.0.0-split.csv"
LABEL_TABLE = "mimic-cxr-2.0.0-chexpert.csv"
FRONTAL_VIEWS = ("PA", "AP")
SPLIT_NAMES = {"train": "training", "validate": "validation", "test": "test"}
DATALIST_NAME = "mimic_cxr.json"

EXPECTED_LAYOUT = f"""expected layout (MIMIC-CXR-JPG 2.x from PhysioNet; tables may be .csv or .csv.gz):
  ROOT/{METADATA_TABLE}      dicom_id, subject_id, study_id, ViewPosition, ...
  ROOT/{SPLIT_TABLE}         dicom_id, study_id, subject_id, split
  ROOT/{LABEL_TABLE}      subject_id, study_id, 14 CheXpert labels (optional: adds 'classes')
  ROOT/files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg
reports, one of:
  REPORTS/files/pXX/pSUBJECT/sSTUDY.txt      MIMIC-CXR mimic-cxr-reports.zip, unzipped
                                             (--reports REPORTS; default: ROOT)
  --sectioned-csv FILE                       columns study, findings, impression (as written by
                                             the MIMIC-CXR code's create_section_files.py)
writes OUTPUT/{DATALIST_NAME}: items image, report, subject_id, study_id, dicom_id, view[, classes]"""


def _study_number(study: str) -> str:
    """``s50414267`` (report files, sectioned CSV) and ``50414267`` (tables) -> ``50414267``."""
    return study[1:] if study[:1] in ("s", "S") else study


def _image_path(root: Path, row: dict[str, str]) -> Path:
    """``ROOT/files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg`` for one metadata row."""
    subject = row["subject_id"]
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{row['study_id']}" / f"{row['dicom_id']}.jpg"


def _reports_from_files(
    reports_root: Path, studies: dict[str, str]
) -> tuple[dict[str, str | None], dict[tuple[str, str], Counter]]:
    """FINDINGS + IMPRESSION per study from ``files/pXX/pSUBJECT/sSTUDY.txt`` (None: no file),
    and per (section, header family) the number of studies that took that section from each header."""
    reports: dict[str, str | None] = {}
    sources: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for study, subject in progress(studies.items(), "reading reports", total=len(studies)):
        path = reports_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            reports[study] = None
            continue
        sections = find_sections(text)
        reports[study] = compose_report(*(sections[name].text if name in sections else "" for name in SECTIONS))
        for name, section in sections.items():
            sources[name, section.family][section.header] += 1
    if studies and all(report is None for report in reports.values()):
        example = next(iter(studies.items()))
        raise DataError(
            reports_root / "files" / f"p{example[1][:2]}" / f"p{example[1]}" / f"s{example[0]}.txt",
            "report file not found, and neither is any other (unzip mimic-cxr-reports.zip there or pass --reports)",
        )
    return reports, sources


def _section_source_counts(sources: dict[tuple[str, str], Counter]) -> dict[str, int]:
    """Studies per (section, header family), as ``findings_from_exam_title=...``; logs the most
    frequent headers of each family, so the mapping can be checked on the real reports."""
    counts = {}
    for section, family in SECTION_SOURCES:
        headers = sources.get((section, family), Counter())
        counts[f"{section}_from_{family}"] = headers.total()
        if headers:
            common = ", ".join(f"{header!r} {n}" for header, n in headers.most_common(5))
            logger.info("%s from %s headers: %d studies (most frequent: %s)", section, family, headers.total(), common)
    return counts


def _reports_from_sectioned_csv(path: Path, studies: dict[str, str]) -> dict[str, str | None]:
    """FINDINGS + IMPRESSION per study from a sectioned CSV (None: study not in the file)."""
    sections = {
        _study_number(row["study"]): row for row in read_table(path, ["study", "findings", "impression"])
    }
    return {
        study: compose_report(sections[study]["findings"], sections[study]["impression"]) if study in sections else None
        for study in studies
    }


def _positive_findings(root: Path) -> dict[str, list[str]] | None:
    """Study -> CheXpert observations labelled positive (1.0), or None without the label table."""
    try:
        path = locate_table(root, LABEL_TABLE)
    except DataError:
        logger.info("no %s in %s: items get no 'classes'", LABEL_TABLE, root)
        return None
    rows = read_table(path, ["study_id", *OBSERVATIONS])
    return {row["study_id"]: [name for name in OBSERVATIONS if row[name] in ("1", "1.0")] for row in rows}


def prepare_mimic_cxr(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    reports_root: str | os.PathLike | None = None,
    sectioned_csv: str | os.PathLike | None = None,
    views: Sequence[str] = FRONTAL_VIEWS,
    skip_missing_images: bool = False,
) -> PreparationReport:
    """Write ``OUTPUT/mimic_cxr.json`` (training / validation / test) from a MIMIC-CXR-JPG download."""
    root = require_folder(root, "the MIMIC-CXR-JPG download")
    output_dir = Path(output_dir)
    metadata_path = locate_table(root, METADATA_TABLE)
    metadata = read_table(metadata_path, ["dicom_id", "subject_id", "study_id", "ViewPosition"])
    split_path = locate_table(root, SPLIT_TABLE)
    official_split = {row["dicom_id"]: row["split"] for row in read_table(split_path, ["dicom_id", "split"])}
    findings = _positive_findings(root)

    frontal = [row for row in metadata if row["ViewPosition"] in views]
    studies = {row["study_id"]: row["subject_id"] for row in frontal}
    section_counts = {}
    if sectioned_csv is not None:
        reports = _reports_from_sectioned_csv(Path(sectioned_csv), studies)
    else:
        reports, sources = _reports_from_files(Path(reports_root) if reports_root is not None else root, studies)
        section_counts = _section_source_counts(sources)

    with_report = [row for row in frontal if reports[row["study_id"]]]
    image_paths = [_image_path(root, row) for row in with_report]
    missing = find_missing(image_paths, metadata_path, skip_missing_images)

    splits: dict[str, list[dict]] = {name: [] for name in SPLIT_NAMES.values()}
    for row, image in zip(with_report, image_paths):
        if image in missing:
            continue
        split = official_split.get(row["dicom_id"])
        if split not in SPLIT_NAMES:
            problem = "has no row" if split is None else f"has split {split!r}, expected one of {sorted(SPLIT_NAMES)}"
            raise DataError(split_path, f"dicom_id {row['dicom_id']} {problem}")
        item = {
            "image": relative_path(image, output_dir),
            "report": reports[row["study_id"]],
            "subject_id": row["subject_id"],
            "study_id": row["study_id"],
            "dicom_id": row["dicom_id"],
            "view": row["ViewPosition"],
        }
        if findings is not None:
            item["classes"] = findings.get(row["study_id"], [])
        splits[SPLIT_NAMES[split]].append(item)

    report = PreparationReport("mimic_cxr")
    report.outputs.append(write_datalist(output_dir / DATALIST_NAME, splits))
    no_report = {study for study, text in reports.items() if text is None}
    empty_report = {study for study, text in reports.items() if text == ""}
    # Image counts add up: metadata_images = every "dropped"/"skipped" count + the three splits.
    report.counts.update(
        metadata_images=len(metadata),
        non_frontal_dropped=len(metadata) - len(frontal),
        no_report_dropped=sum(row["study_id"] in no_report for row in frontal),
        empty_report_dropped=sum(row["study_id"] in empty_report for row in frontal),
        missing_images_skipped=len(missing),
        **{name: len(items) for name, items in splits.items()},
        empty_report_studies=len(empty_report),
        **section_counts,
    )
    return report
