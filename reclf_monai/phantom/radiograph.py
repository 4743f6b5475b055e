"""One synthetic radiograph from one report's MeSH terms: patient, findings, exposure, mask.

Everything random comes from one generator seeded by (seed, report uid) (:func:`case_rng`), so
an image depends only on its report, the seed and the image size, never on which other reports
are rendered or in which process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .anatomy import Chest, sample_patient
from .finding_renderers import RENDERERS, place_finding
from .mesh_findings import resolve_findings

REGION_THRESHOLD = 0.5
COMPRESSION = 2.0


@dataclass
class RenderedCase:
    """A rendered radiograph (uint8), its finding mask (uint8, 0 or 255) and finding records.

    `findings` holds one record per drawn finding and side: ``type``, ``side``, ``zone``,
    ``severity``, ``bbox`` ([x0, y0, x1, y1] in pixels, x1/y1 exclusive; None for findings
    without a region such as hyperinflation) and the source ``mesh`` term. `types` lists the
    distinct rendered finding types, `ignored` the MeSH descriptors nothing was drawn for.
    """

    image: np.ndarray
    mask: np.ndarray
    findings: list[dict]
    types: list[str]
    ignored: list[str]


def case_rng(seed: int, uid: str) -> np.random.Generator:
    """The generator of one report's image: a function of (seed, uid) only."""
    digest = hashlib.sha256(uid.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def expose(chest: Chest, rng: np.random.Generator) -> np.ndarray:
    """Density -> 8-bit image: detector blur, the patient's window and gamma, then noise."""
    p = chest.patient
    density = gaussian_filter(chest.density, 0.6)
    low, high = p.window
    # Compressive response: a bone or lesion shows less over dense heart/abdomen than over lung.
    transmitted = 1.0 - np.exp(-COMPRESSION * np.clip((density - low) / (high - low), 0.0, None))
    image = np.clip(transmitted / (1.0 - np.exp(-COMPRESSION)), 0.0, 1.0) ** p.gamma
    image = image + p.noise * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _bbox(region: np.ndarray) -> list[int] | None:
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def render_case(mesh_terms: Iterable[str], size: int, rng: np.random.Generator) -> RenderedCase:
    """Render the radiograph of a report with these MeSH major terms."""
    specs, ignored = resolve_findings(mesh_terms)
    patient = sample_patient(rng)
    placements = [placement for spec in specs for placement in place_finding(spec, rng)]
    for placement in placements:
        adjust = RENDERERS[placement.type].adjust
        if adjust is not None:
            adjust(patient, placement, rng)
    chest = Chest(patient, size, rng)
    mask = np.zeros((size, size), bool)
    findings = []
    for placement in placements:
        draw = RENDERERS[placement.type].draw
        region = draw(chest, placement, rng) if draw is not None else None
        bbox = None
        if region is not None:
            inside = region > REGION_THRESHOLD
            mask |= inside
            bbox = _bbox(inside)
        findings.append(
            {
                "type": placement.type,
                "side": placement.side,
                "zone": placement.zone,
                "severity": placement.spec.severity,
                "bbox": bbox,
                "mesh": placement.spec.mesh,
            }
        )
    types = list(dict.fromkeys(placement.type for placement in placements))
    image = expose(chest, rng)
    return RenderedCase(image, mask.astype(np.uint8) * 255, findings, types, ignored)
