"""IU-Phantom: real IU chest X-ray reports paired with SYNTHETIC frontal radiographs.

Each image is rendered from its report's MeSH major terms (finding type, side, zone, severity),
so finding masks, boxes and class labels are exact. See docs/iu_phantom.md.
"""

from .corpus import CorpusSummary, build_corpus, stratified_split
from .laterality import laterality_prompts, single_sided_finding, write_laterality_set
from .mesh_findings import FindingSpec, MeshTerm, parse_mesh_term, resolve_findings
from .radiograph import RenderedCase, case_rng, render_case
from .relation_probe import write_relation_probe
from .zero_shot_classes import PROMPTS, ZERO_SHOT_CLASSES, class_target, single_class

__all__ = [
    "CorpusSummary",
    "FindingSpec",
    "MeshTerm",
    "PROMPTS",
    "RenderedCase",
    "ZERO_SHOT_CLASSES",
    "build_corpus",
    "case_rng",
    "class_target",
    "laterality_prompts",
    "parse_mesh_term",
    "render_case",
    "resolve_findings",
    "single_class",
    "single_sided_finding",
    "stratified_split",
    "write_laterality_set",
    "write_relation_probe",
]
