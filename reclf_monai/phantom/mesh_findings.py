"""MeSH "major" terms of IU reports -> findings the phantom can draw.

An IU MeSH term is a descriptor followed by qualifiers, e.g. ``Opacity/lung/upper lobe/right``,
``Cardiomegaly/mild``, ``Pleural Effusion/bilateral/small``. :func:`parse_mesh_term` splits a term
into side, zone, severity and the remaining qualifiers; :func:`resolve_findings` maps it to the
phantom's finding types (several descriptors share one look, e.g. Airspace Disease and Infiltrate
are drawn as an Opacity). Terms without a drawable meaning come back as ``None`` so the corpus
builder can count what it ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

SIDES = ("right", "left", "bilateral")
# Lung zones in the order a qualifier list is searched; the first one present wins.
ZONES = (
    "upper lobe",
    "middle lobe",
    "lower lobe",
    "lingula",
    "apex",
    "base",
    "hilum",
    "retrocardiac",
    "costophrenic angle",
    "paratracheal",
)
# Severity words and their magnitude on one scale (size words count as severity).
SEVERITY_SCALE = {"borderline": 0.5, "small": 1.0, "mild": 1.0, "moderate": 2.0, "large": 3.0, "severe": 3.0}
NORMAL_TERMS = {"normal"}


@dataclass(frozen=True)
class MeshTerm:
    """One parsed MeSH major term."""

    raw: str
    descriptor: str
    side: str | None = None
    zone: str | None = None
    severity: str | None = None
    qualifiers: tuple[str, ...] = ()

    def has(self, *words: str) -> bool:
        """True if any of `words` is among the remaining qualifiers."""
        return any(word in self.qualifiers for word in words)


@dataclass(frozen=True)
class FindingSpec:
    """A finding to draw: its phantom type and where/how much, from one MeSH term."""

    type: str
    side: str | None
    zone: str | None
    severity: str | None
    qualifiers: tuple[str, ...]
    mesh: str

    @property
    def magnitude(self) -> float | None:
        """Severity on the 0.5 (borderline) .. 3 (severe/large) scale; None if not stated."""
        return SEVERITY_SCALE.get(self.severity) if self.severity else None


def _clean(part: str) -> str:
    return re.sub(r"\s+", " ", part).strip()


def parse_mesh_term(term: str) -> MeshTerm:
    """Split ``Descriptor/qualifier/...`` into descriptor, side, zone, severity and the rest.

    Qualifiers are lower-cased; the descriptor keeps MeSH capitalisation with whitespace
    collapsed (the reports contain e.g. ``Subcutaneous  Emphysema``). When several severity words
    are present the strongest wins.
    """
    parts = [_clean(p) for p in term.split("/") if _clean(p)]
    if not parts:
        return MeshTerm(raw=term, descriptor="")
    descriptor, qualifiers = parts[0], [p.lower() for p in parts[1:]]
    side = next((q for q in qualifiers if q in SIDES), None)
    zone = next((z for z in ZONES if z in qualifiers), None)
    severities = [q for q in qualifiers if q in SEVERITY_SCALE]
    severity = max(severities, key=SEVERITY_SCALE.__getitem__) if severities else None
    rest = tuple(q for q in qualifiers if q not in SIDES and q != zone and q not in SEVERITY_SCALE)
    return MeshTerm(raw=term, descriptor=descriptor, side=side, zone=zone, severity=severity, qualifiers=rest)


# Anatomy words that place a finding inside the lungs (as opposed to bone, breast, abdomen...).
_LUNG_WORDS = ("lung", "pulmonary alveoli", "multilobar", "interstitial")
_LUNG_ZONES = {"upper lobe", "middle lobe", "lower lobe", "lingula", "apex", "base", "hilum", "retrocardiac", "costophrenic angle"}
_NODE_WORDS = ("lymph nodes", "mediastinum", "trachea, carina", "pulmonary artery")
_AORTA_WORDS = ("aorta", "aorta, thoracic")


def _in_lung(term: MeshTerm) -> bool:
    return term.has(*_LUNG_WORDS) or term.zone in _LUNG_ZONES


# Anatomy words that put a finding outside the lungs.
_NOT_LUNG_WORDS = (
    "ribs", "clavicle", "breast", "heart", "mediastinum", "pleura", "spine", "thoracic vertebrae",
    "abdomen", "shoulder", "humerus", "neck", "sternum", "supracardiac", "pleural sinus", "adipose tissue",
)


def _lung_lesion(term: MeshTerm) -> str | None:
    """An opacity or density of the lung; round ones are drawn as nodules."""
    if term.has(*_NOT_LUNG_WORDS):
        return None
    return "Nodule" if term.has("round") else "Opacity"


def _calcinosis(term: MeshTerm) -> str | None:
    if term.has(*_AORTA_WORDS):
        return "Aortic Calcification"
    if term.zone in ("hilum", "paratracheal") or term.has(*_NODE_WORDS):
        return "Calcified Lymph Node"
    if _in_lung(term) or term.has("scattered"):
        return "Calcified Granuloma"
    return None


def _lung(term: MeshTerm) -> str | None:
    if term.has("hypoinflation"):
        return "Hypoinflation"
    if term.has("hyperdistention"):
        return "Hyperinflation"
    if term.has("azygos lobe"):
        return "Azygos Fissure"
    if term.zone == "hilum" and term.has("enlarged", "prominent"):
        return "Hilar Enlargement"
    if term.has("interstitial"):
        return "Interstitial Markings"
    return None


def _markings(term: MeshTerm) -> str:
    return "Bronchovascular Markings" if term.has("bronchovascular") else "Interstitial Markings"


def _diaphragm(term: MeshTerm) -> str | None:
    if term.has("elevated"):
        return "Elevated Diaphragm"
    if term.has("flattened"):
        return "Hyperinflation"
    return None


def _surgical(term: MeshTerm) -> str | None:
    if term.has("cervical vertebrae", "neck", "shoulder", "breast"):
        return None
    if term.has("abdomen", "lung") or (term.side and not term.has("mediastinum")):
        return "Surgical Clips"
    return "Sternotomy Wires"


def _implanted(term: MeshTerm) -> str | None:
    if term.has("aortic valve", "mitral valve", "heart", "heart atria"):
        return "Valve Prosthesis"
    if term.has("humerus", "shoulder", "cervical vertebrae", "thoracic vertebrae", "abdomen", "pulmonary artery"):
        return None
    return "Pacemaker"


def _qualified(type_name: str, *words: str) -> Callable[[MeshTerm], str | None]:
    """A rule that draws `type_name` only when one of `words` is a qualifier."""
    return lambda term: type_name if term.has(*words) else None


def _in_lung_only(type_name: str) -> Callable[[MeshTerm], str | None]:
    return lambda term: None if term.has(*_NOT_LUNG_WORDS) else type_name


_Rule = str | tuple[str, ...] | Callable[[MeshTerm], "str | tuple[str, ...] | None"]

# Descriptor -> phantom finding type(s), or a rule deciding from the qualifiers.
RULES: dict[str, _Rule] = {
    "Opacity": _lung_lesion,
    "Airspace Disease": "Opacity",
    "Infiltrate": "Opacity",
    "Density": _lung_lesion,
    "Consolidation": "Consolidation",
    "Pneumonia": "Consolidation",
    "Pulmonary Atelectasis": "Atelectasis",
    "Pleural Effusion": "Pleural Effusion",
    "Hemothorax": "Pleural Effusion",
    "Costophrenic Angle": _qualified("Blunted Costophrenic Angle", "blunted", "obscured"),
    "Cardiomegaly": "Cardiomegaly",
    "Cardiac Shadow": _qualified("Cardiomegaly", "enlarged"),
    "Pericardial Effusion": "Pericardial Effusion",
    "Nodule": "Nodule",
    "Mass": _in_lung_only("Mass"),
    "Calcified Granuloma": "Calcified Granuloma",
    "Granuloma": "Calcified Granuloma",
    "Granulomatous Disease": "Calcified Granuloma",
    "Calcinosis": _calcinosis,
    "Atherosclerosis": _qualified("Aortic Calcification", *_AORTA_WORDS),
    "Pneumothorax": "Pneumothorax",
    "Hydropneumothorax": ("Pneumothorax", "Pleural Effusion"),
    "Hemopneumothorax": ("Pneumothorax", "Pleural Effusion"),
    "Lung": _lung,
    "Lung, Hyperlucent": "Emphysema",
    "Emphysema": "Emphysema",
    "Pulmonary Emphysema": "Emphysema",
    "Pulmonary Disease, Chronic Obstructive": "Hyperinflation",
    "Bullous Emphysema": "Bulla",
    "Blister": "Bulla",
    "Cysts": _in_lung_only("Bulla"),
    "Lucency": _qualified("Bulla", "lung"),
    "Cavitation": "Cavity",
    "Diaphragm": _diaphragm,
    "Diaphragmatic Eventration": "Elevated Diaphragm",
    "Pulmonary Edema": "Pulmonary Edema",
    "Heart Failure": "Pulmonary Edema",
    "Pulmonary Congestion": "Pulmonary Congestion",
    "Markings": _markings,
    "Lung Diseases, Interstitial": "Interstitial Markings",
    "Pulmonary Fibrosis": "Interstitial Markings",
    "Fibrosis": "Interstitial Markings",
    "Cicatrix": _in_lung_only("Scar"),
    "Thickening": _qualified("Pleural Thickening", "pleura"),
    "Hypertension, Pulmonary": "Hilar Enlargement",
    "Pulmonary Artery": _qualified("Hilar Enlargement", "enlarged", "prominent"),
    "Sarcoidosis": "Hilar Enlargement",
    "Lymph Nodes": _qualified("Hilar Enlargement", "enlarged"),
    "Mediastinum": _qualified("Mediastinal Widening", "prominent", "enlarged"),
    "Aorta": _qualified("Tortuous Aorta", "tortuous", "enlarged", "prominent"),
    "Aorta, Thoracic": _qualified("Tortuous Aorta", "tortuous", "enlarged", "prominent"),
    "Aortic Aneurysm": "Tortuous Aorta",
    "Hernia, Hiatal": "Hiatal Hernia",
    "Scoliosis": "Scoliosis",
    "Thoracic Vertebrae": _qualified("Spinal Degeneration", "degenerative"),
    "Spine": _qualified("Spinal Degeneration", "degenerative"),
    "Spondylosis": "Spinal Degeneration",
    "Osteophyte": _qualified("Spinal Degeneration", "thoracic vertebrae", "spine"),
    "Hyperostosis, Diffuse Idiopathic Skeletal": "Spinal Degeneration",
    "Spinal Fusion": _qualified("Spinal Fusion Hardware", "thoracic vertebrae"),
    "Bone Diseases, Metabolic": "Osteopenia",
    "Osteoporosis": "Osteopenia",
    "Fractures, Bone": lambda t: "Rib Fracture" if t.has("ribs") else ("Clavicle Fracture" if t.has("clavicle") else None),
    "Deformity": lambda t: "Rib Fracture" if t.has("ribs") else ("Clavicle Fracture" if t.has("clavicle") else None),
    "Catheters, Indwelling": lambda t: None if t.has("abdomen", "thoracic vertebrae") else "Central Venous Catheter",
    "Implanted Medical Device": _implanted,
    "Surgical Instruments": _surgical,
    "Sutures": _qualified("Surgical Clips", "lung", "mediastinum", "sternum"),
    "Tube, Inserted": "Tube",
    "Stents": _qualified("Stent", "coronary vessels"),
    "Foreign Bodies": lambda t: None if t.has("breast", "abdomen", "neck", "shoulder", "spine", "lumbar vertebrae") else "Foreign Body",
    "Medical Device": lambda t: None if t.has("breast", "spine") else "Foreign Body",
    "Subcutaneous Emphysema": "Subcutaneous Emphysema",
    "Pneumoperitoneum": "Pneumoperitoneum",
    "Nipple Shadow": "Nipple Shadow",
    "Technical Quality of Image Unsatisfactory": "Suboptimal Technique",
}


_RULES_BY_NAME = {name.lower(): rule for name, rule in RULES.items()}


def _mesh_types(term: MeshTerm) -> tuple[str, ...]:
    rule = _RULES_BY_NAME.get(term.descriptor.lower())
    result = rule(term) if callable(rule) else rule
    if result is None:
        return ()
    return (result,) if isinstance(result, str) else tuple(result)


def resolve_findings(terms: Iterable[str]) -> tuple[list[FindingSpec], list[str]]:
    """Findings to draw for a report's MeSH terms, and the terms that have no renderer.

    ``normal`` yields nothing and is not counted as ignored. Ignored terms are returned as
    their descriptor (e.g. ``Kyphosis``) so that counts group naturally.
    """
    findings: list[FindingSpec] = []
    ignored: list[str] = []
    for raw in terms:
        term = parse_mesh_term(raw)
        if not term.descriptor or term.descriptor.lower() in NORMAL_TERMS:
            continue
        types = _mesh_types(term)
        if not types:
            ignored.append(term.descriptor)
        for type_name in types:
            findings.append(FindingSpec(type_name, term.side, term.zone, term.severity, term.qualifiers, raw))
    return findings, ignored
