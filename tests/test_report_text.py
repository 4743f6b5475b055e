import pytest

from reclf_monai.data.report_text import compose_report, extract_sections, normalise_report_text, split_sentences

MIMIC_STYLE = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old woman with cough

 COMPARISON:  ___

 Findings :
 1. Heart size is normal.  2. Lungs are clear,
 no pleural effusion.

 impression:   No acute cardiopulmonary process.
 NOTIFICATION:  Dr. ___ was told.
"""


def test_extract_sections_handles_case_spacing_and_following_headers():
    sections = extract_sections(MIMIC_STYLE)
    assert sections["findings"].startswith("1. Heart size is normal.")
    assert "no pleural effusion." in sections["findings"]
    assert "INDICATION" not in sections["findings"]
    assert sections["impression"] == "No acute cardiopulmonary process."


@pytest.mark.parametrize(
    "text, findings, impression",
    [
        ("IMPRESSION: Small left effusion.", "", "Small left effusion."),
        ("FINDINGS: Clear lungs.\n", "Clear lungs.", ""),
        ("CONCLUSION: Cardiomegaly.", "", "Cardiomegaly."),
        ("No headers at all.", "", ""),
    ],
)
def test_extract_sections_with_one_or_no_section(text, findings, impression):
    assert extract_sections(text) == {"findings": findings, "impression": impression}


def test_normalise_drops_deid_tokens_numbering_and_whitespace():
    assert normalise_report_text("Clear lung XXXX  bilaterally.\n 2. Dr. ___ notified .") == (
        "Clear lung bilaterally. Dr. notified."
    )
    assert normalise_report_text("XXXX yr old", deid_token="[DEID]") == "[DEID] yr old"
    assert normalise_report_text("Nodule 2.5 cm, 1. stable") == "Nodule 2.5 cm, stable"


def test_split_sentences_keeps_decimals_and_splits_glued_sentences():
    assert split_sentences("A 2.5 cm nodule. Opacity in the apex.There is no effusion.") == [
        "A 2.5 cm nodule.",
        "Opacity in the apex.",
        "There is no effusion.",
    ]


def test_compose_report_joins_sections_and_detects_empty():
    assert compose_report("Heart normal", "No acute disease.") == "Heart normal. No acute disease."
    assert compose_report("", "XXXX.") == ""
    assert compose_report("  ", "") == ""
