from reclf_monai.data.report_text import compose_report, normalise_report_text, split_sentences


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
