import pytest

from reclf_monai.data.report_sections import classify_header, extract_sections, find_sections

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


# Report texts in the layout of the MIMIC-CXR report files, one per header family of the official parser.
CHEST_TWO_VIEWS = """                                 FINAL REPORT
 INDICATION:  Shortness of breath.

 CHEST, TWO VIEWS:  The heart is mildly enlarged.  There is no pleural effusion.

 IMPRESSION:  Mild cardiomegaly.
"""
PA_AND_LATERAL = """                                 FINAL REPORT
 HISTORY:  Cough.

 PA AND LATERAL VIEWS OF THE CHEST:  Lungs are clear.  No pneumothorax.
"""
FINDINGS_AND_IMPRESSION = """                                 FINAL REPORT
 REASON FOR EXAMINATION:  Fever.

 FINDINGS AND IMPRESSION:  Right lower lobe opacity, likely pneumonia.
"""
FINDINGS_SLASH_IMPRESSION = """ COMPARISON:  None.

 FINDINGS/IMPRESSION:  No acute process.
"""
PORTABLE_AP_CHEST = """ INDICATION:  Line placement.

 PORTABLE AP CHEST:  Right internal jugular line ends in the SVC.

 NOTIFICATION:  Dr. ___ was paged.
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (CHEST_TWO_VIEWS, {
            "findings": ("The heart is mildly enlarged.  There is no pleural effusion.", "CHEST, TWO VIEWS",
                         "exam_title"),
            "impression": ("Mild cardiomegaly.", "IMPRESSION", "impression")}),
        (PA_AND_LATERAL, {
            "findings": ("Lungs are clear.  No pneumothorax.", "PA AND LATERAL VIEWS OF THE CHEST", "exam_title")}),
        (FINDINGS_AND_IMPRESSION, {
            "impression": ("Right lower lobe opacity, likely pneumonia.", "FINDINGS AND IMPRESSION",
                           "findings_and_impression")}),
        (FINDINGS_SLASH_IMPRESSION, {
            "impression": ("No acute process.", "FINDINGS/IMPRESSION", "findings_and_impression")}),
        (PORTABLE_AP_CHEST, {
            "findings": ("Right internal jugular line ends in the SVC.", "PORTABLE AP CHEST", "exam_title")}),
    ],
)  # fmt: skip
def test_header_families_of_the_official_parser(text, expected):
    sections = find_sections(text)
    assert {name: (s.text, s.header, s.family) for name, s in sections.items()} == expected


@pytest.mark.parametrize(
    "name, kind",
    [
        ("FINDINGS", ("findings", "findings")),
        ("Findings", ("findings", "findings")),
        ("REFERENCE FINDINGS", ("findings", "findings")),
        ("IMPRESSIONS", ("impression", "impression")),
        ("conclusion", ("impression", "impression")),
        ("Findings / Impression", ("findings_and_impression", "impression")),
        ("PROVISIONAL FINDINGS IMPRESSION (PFI)", ("findings_and_impression", "impression")),
        ("PA AND LAT", ("exam_title", "findings")),
        ("AP VIEW", ("exam_title", "findings")),
        ("FRONTAL SEMI-UPRIGHT", ("exam_title", "findings")),
        ("RIBS, THREE VIEWS", ("exam_title", "findings")),
        ("IMPRESSOIN", ("misspelt", "impression")),
        ("FINIDNGS", ("misspelt", "findings")),
        ("COMPARISON WITH PRIOR CHEST", ("other", None)),
        ("CLINICAL HISTORY", ("other", None)),
        ("INDICATION", ("other", None)),
        ("TECHNIQUE", ("other", None)),
        ("Lungs", None),  # not in capitals and no section name: body text, not a header
        ("Portable chest", None),
    ],
)
def test_classify_header(name, kind):
    assert classify_header(name) == kind


def test_body_lines_with_colons_stay_in_their_section():
    text = (" FINDINGS:  Lines and tubes:  ET tube 4 cm above the carina.\n Lungs: clear.\n\n"
            " IMPRESSION:  Tube in place.\n")
    assert extract_sections(text) == {
        "findings": "Lines and tubes:  ET tube 4 cm above the carina.\n Lungs: clear.",
        "impression": "Tube in place.",
    }


def test_empty_sections_are_skipped_and_the_last_section_of_a_kind_counts():
    # A title header directly followed by another header is empty and gives no findings.
    assert find_sections(" CHEST, PA AND LATERAL:\n\n INDICATION:  Cough.\n") == {}
    text = (" WET READ IMPRESSION:  Possible left effusion.\n"
            " CHEST, TWO VIEWS:\n FINDINGS:  Small left effusion.\n IMPRESSION:  Small left effusion, new.\n")
    sections = find_sections(text)
    assert (sections["findings"].text, sections["findings"].family) == ("Small left effusion.", "findings")
    assert (sections["impression"].text, sections["impression"].header) == ("Small left effusion, new.", "IMPRESSION")
