"""The IU-Phantom relation probe: cases drawn from the findings, each rendered as reported and with the sides swapped."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from PIL import Image

from reclf_monai.phantom.laterality import LATERAL_FINDINGS
from reclf_monai.phantom.relation_probe import probe_findings, probe_texts, read_probe_cases, write_relation_probe


def test_every_layout_appears_equally_often_and_both_ways_round():
    cases = probe_findings(cases_per_layout=3, seed=0)
    layouts = Counter(tuple(case) for case in cases)
    assert set(layouts.values()) == {3}
    singles = [layout for layout in layouts if len(layout) == 1]
    pairs = [layout for layout in layouts if len(layout) == 2]
    assert len(singles) == 2 * len(LATERAL_FINDINGS) and len(pairs) == 2 * 6  # each pair of classes, both sides
    for (first, first_side), (second, second_side) in pairs:
        assert first != second and first_side != second_side
        assert ((first, second_side), (second, first_side)) in layouts  # the mirrored layout is there too
    assert probe_findings(3, seed=0) == cases and probe_findings(3, seed=1) != cases


def test_texts_are_minimal_edits_of_the_report():
    texts = probe_texts([("Pleural Effusion", "left"), ("Nodule", "right")])
    assert texts == {
        "report": "left pleural effusion. right lung nodule.",
        "sides swapped": "right pleural effusion. left lung nodule.",
        "negated": ["no left pleural effusion. right lung nodule.", "left pleural effusion. no right lung nodule."],
    }


def test_each_case_is_rendered_as_reported_and_mirrored(tmp_path):
    cases = write_relation_probe(tmp_path, image_size=64, seed=0, cases_per_layout=1)
    content = json.loads((tmp_path / "relation_probe.json").read_text())
    assert cases == len(content["cases"]) == 2 * len(LATERAL_FINDINGS) + 12
    assert [item["label"] for item in content["test"]] == [[case, variant] for case in range(cases) for variant in (0, 1)]
    for case in read_probe_cases(tmp_path / "relation_probe.json"):
        report, swapped = (np.asarray(Image.open(tmp_path / f"probe/case{case['case']:04d}_{name}.png")) for name in ("report", "swapped"))
        assert report.shape == swapped.shape == (64, 64)
        assert not np.array_equal(report, swapped)  # the findings moved
        assert case["report"] == probe_texts([tuple(finding) for finding in case["findings"]])["report"]
    first = np.asarray(Image.open(tmp_path / "probe/case0000_report.png"))
    write_relation_probe(tmp_path / "again", image_size=64, seed=0, cases_per_layout=1)
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "again/probe/case0000_report.png")))  # seeded
