"""IU-Phantom: MeSH major terms -> finding types, sides, zones, severities; class targets."""

import pytest

from reclf_monai.phantom.finding_renderers import RENDERERS
from reclf_monai.phantom.mesh_findings import RULES, parse_mesh_term, resolve_findings
from reclf_monai.phantom.zero_shot_classes import (
    CLASS_OF_FINDING,
    PROMPTS,
    ZERO_SHOT_CLASSES,
    class_target,
    single_class,
)


@pytest.mark.parametrize(
    "term, descriptor, side, zone, severity, qualifiers",
    [
        ("Opacity/lung/upper lobe/right", "Opacity", "right", "upper lobe", None, ("lung",)),
        ("Cardiomegaly/mild", "Cardiomegaly", None, None, "mild", ()),
        ("Pleural Effusion/bilateral/small", "Pleural Effusion", "bilateral", None, "small", ()),
        ("Pulmonary Atelectasis/base/left/mild", "Pulmonary Atelectasis", "left", "base", "mild", ()),
        ("Calcified Granuloma/lung/lingula", "Calcified Granuloma", None, "lingula", None, ("lung",)),
        ("Opacity/lung/base/bilateral/streaky/mild", "Opacity", "bilateral", "base", "mild", ("lung", "streaky")),
        ("Subcutaneous  Emphysema", "Subcutaneous Emphysema", None, None, None, ()),
        ("Cardiomegaly/borderline", "Cardiomegaly", None, None, "borderline", ()),
    ],
)
def test_parse_mesh_term(term, descriptor, side, zone, severity, qualifiers):
    parsed = parse_mesh_term(term)
    assert (parsed.descriptor, parsed.side, parsed.zone, parsed.severity, parsed.qualifiers) == (
        descriptor,
        side,
        zone,
        severity,
        qualifiers,
    )


def test_strongest_severity_wins():
    assert parse_mesh_term("Pleural Effusion/left/small/large").severity == "large"


@pytest.mark.parametrize(
    "term, types",
    [
        ("Airspace Disease/lung/base/left", ["Opacity"]),
        ("Infiltrate/lung/lower lobe/right", ["Opacity"]),
        ("Pneumonia/lower lobe/right", ["Consolidation"]),
        ("Lung/hypoinflation", ["Hypoinflation"]),
        ("Lung/hyperdistention/mild", ["Hyperinflation"]),
        ("Diaphragm/bilateral/flattened", ["Hyperinflation"]),
        ("Cardiac Shadow/enlarged/mild", ["Cardiomegaly"]),
        ("Costophrenic Angle/right/blunted", ["Blunted Costophrenic Angle"]),
        ("Granuloma/lung/upper lobe/left", ["Calcified Granuloma"]),
        ("Calcinosis/lung/hilum/lymph nodes/right", ["Calcified Lymph Node"]),
        ("Calcinosis/aorta", ["Aortic Calcification"]),
        ("Calcinosis/lung/base/left", ["Calcified Granuloma"]),
        ("Density/lung/middle lobe/right/round", ["Nodule"]),
        ("Hydropneumothorax", ["Pneumothorax", "Pleural Effusion"]),
        ("Lymph nodes/left/enlarged", ["Hilar Enlargement"]),
        ("Surgical Instruments/mediastinum", ["Sternotomy Wires"]),
        ("Surgical Instruments/abdomen/right", ["Surgical Clips"]),
        ("Implanted Medical Device/left", ["Pacemaker"]),
    ],
)
def test_resolve_finding_types(term, types):
    findings, ignored = resolve_findings([term])
    assert [f.type for f in findings] == types
    assert ignored == []


def test_ignored_and_normal_terms():
    findings, ignored = resolve_findings(["normal", "Kyphosis/severe", "No Indexing", "Opacity/ribs/left", "Cardiomegaly"])
    assert [f.type for f in findings] == ["Cardiomegaly"]
    assert ignored == ["Kyphosis", "No Indexing", "Opacity"]


def test_finding_keeps_location_and_source():
    (finding,), _ = resolve_findings(["Opacity/lung/upper lobe/right"])
    assert (finding.side, finding.zone, finding.mesh) == ("right", "upper lobe", "Opacity/lung/upper lobe/right")
    assert finding.magnitude is None
    (finding,), _ = resolve_findings(["Cardiomegaly/severe"])
    assert finding.magnitude == 3.0


def test_every_rule_type_has_a_renderer():
    produced = set()
    for descriptor in RULES:
        for qualifiers in ("", "/lung", "/enlarged", "/elevated", "/flattened", "/hypoinflation", "/hyperdistention",
                           "/aorta", "/ribs", "/clavicle", "/pleura", "/degenerative", "/tortuous", "/blunted",
                           "/coronary vessels", "/thoracic vertebrae", "/abdomen", "/heart", "/hilum/lymph nodes",
                           "/azygos lobe", "/bronchovascular", "/lung/round", "/prominent"):
            produced.update(f.type for f in resolve_findings([descriptor + qualifiers])[0])
    assert produced - set(RENDERERS) == set()
    assert set(CLASS_OF_FINDING) <= set(RENDERERS)


def test_class_targets_and_single_class():
    assert class_target(["Consolidation", "Scar"]) == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert class_target(["Calcified Granuloma", "Blunted Costophrenic Angle"]) == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert single_class(["Calcified Granuloma", "Nodule", "Tortuous Aorta"]) == "Nodule"
    assert single_class(["Atelectasis", "Cardiomegaly"]) is None
    assert single_class([]) is None
    assert set(PROMPTS) == set(ZERO_SHOT_CLASSES)
    assert all(len(prompts) >= 3 for prompts in PROMPTS.values())
