"""research/report_negations.py: which reports mention a finding, and which deny it."""

from __future__ import annotations

import json
import math

import pytest

from research import report_negations

pytestmark = pytest.mark.research

REPORTS = [
    "Heart size normal. No pleural effusion or pneumothorax.",
    "Small left pleural effusion. No pneumothorax.",
    "Right lower lobe opacity. Effusions are not seen.",  # denied after the word: not counted as denied
    "Lungs are clear.",
]


def test_a_finding_is_denied_by_a_negation_word_before_it_in_its_sentence():
    assert report_negations.mentions(REPORTS[0], "pneumothorax") == (True, True)
    assert report_negations.mentions(REPORTS[1], "effusion") == (True, False)
    assert report_negations.mentions(REPORTS[2], "effusion") == (True, False)
    assert report_negations.mentions(REPORTS[3], "effusion") == (False, False)


def test_table_counts_reports_and_the_share_that_deny(tmp_path, capsys):
    rows = {row["word"]: row for row in report_negations.negation_table(REPORTS, ["effusion", "pneumothorax", "nodule"])}
    assert (rows["effusion"]["reports"], rows["effusion"]["share"], rows["effusion"]["denied"]) == (3, 0.75, pytest.approx(1 / 3))
    assert (rows["pneumothorax"]["reports"], rows["pneumothorax"]["denied"]) == (2, 1.0)
    assert rows["nodule"]["reports"] == 0 and math.isnan(rows["nodule"]["denied"])

    datalist = tmp_path / "datalist.json"
    datalist.write_text(
        json.dumps({"training": [{"image": f"{index}.png", "report": report} for index, report in enumerate(REPORTS)]})
    )
    assert report_negations.main(["--datalist", str(datalist), "--words", "effusion"]) == 0
    assert "| effusion | 3 | 0.750 | 0.333 |" in capsys.readouterr().out
