import io
import tarfile

import pytest

from reclf_monai.data.errors import DataError
from reclf_monai.data.iu_reports import find_iu_reports_archive, iter_iu_reports, parse_iu_report_xml

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{n}"/><MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="FINDINGS">Small right pleural effusion.</AbstractText>
<AbstractText Label="IMPRESSION">{impression}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH><major>Pleural Effusion/right/small</major><automatic>effusion</automatic></MeSH>
<parentImage id="CXR{n}_IM-0001-1001"/></eCitation>"""


def _archive(tmp_path, documents):
    path = tmp_path / "reports.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in documents.items():
            data = text.encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_parse_fields():
    report = parse_iu_report_xml(XML.format(n=7, impression=""))
    assert report.uid == "CXR7"
    assert report.findings == "Small right pleural effusion."
    assert report.impression == ""
    assert report.comparison == "None."
    assert report.mesh_major == ("Pleural Effusion/right/small",)
    assert report.image_ids == ("CXR7_IM-0001-1001",)


def test_iter_reads_archive_in_numeric_order(tmp_path):
    archive = _archive(tmp_path, {"10.xml": XML.format(n=10, impression="A."), "9.xml": XML.format(n=9, impression="B.")})
    assert [r.uid for r in iter_iu_reports(archive)] == ["CXR9", "CXR10"]


def test_bad_xml_names_the_member(tmp_path):
    archive = _archive(tmp_path, {"1.xml": "<eCitation><uId"})
    with pytest.raises(DataError, match="1.xml: not a valid IU report XML"):
        list(iter_iu_reports(archive))


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = _archive(tmp_path, {f"{i}.xml": XML.format(n=i, impression="x" * 2000) for i in range(30)})
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match="cannot read IU report archive"):
        list(iter_iu_reports(archive))


def test_installed_archive_has_all_reports():
    archive = find_iu_reports_archive()
    reports = list(iter_iu_reports(archive))
    assert len(reports) == 3955
    assert len({r.uid for r in reports}) == 3955
    assert sum(bool(r.mesh_major) for r in reports) > 3900
