"""How each finding type changes the phantom chest, and which image region it occupies.

A :class:`Renderer` may *adjust* the :class:`~reclf_monai.phantom.anatomy.Patient` before the
chest is built (a bigger heart, a flat low diaphragm, a bent spine) and/or *draw* on the built
:class:`~reclf_monai.phantom.anatomy.Chest` (fill lung air for an opacity, add a dense nodule,
remove lung markings for a pneumothorax). ``draw`` returns the finding's region as a soft map
(thresholded at 0.5 for masks and boxes) or None for diffuse findings that have no region
(inflation, emphysema, scoliosis, ...).

Sizes and densities grow with the MeSH severity (see
:data:`~reclf_monai.phantom.mesh_findings.SEVERITY_SCALE`). The densities are calibrated so that
findings are visible but not trivial (see docs/iu_phantom.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .anatomy import LEFT, RIGHT, SIDE_SIGN, Chest, Patient
from .mesh_findings import FindingSpec
from .shapes import ellipse, polyline_band, smooth_curve, smooth_noise, soft_step

LUNG_ZONES = ("upper lobe", "middle lobe", "lower lobe")


@dataclass
class Placement:
    """One finding placed on one side (bilateral findings are placed once per side)."""

    spec: FindingSpec
    side: str | None
    zone: str | None
    memo: dict = field(default_factory=dict)  # what `adjust` decided, for `draw`

    @property
    def type(self) -> str:
        return self.spec.type

    def magnitude(self, default: float = 1.5) -> float:
        value = self.spec.magnitude
        return default if value is None else value

    def has(self, *words: str) -> bool:
        return any(word in self.spec.qualifiers for word in words)


Draw = Callable[[Chest, Placement, np.random.Generator], "np.ndarray | None"]
Adjust = Callable[[Patient, Placement, np.random.Generator], None]


@dataclass(frozen=True)
class Renderer:
    """How a finding type is drawn.

    `sides`: "random" (one side at random unless the term names it), "both" (both sides
    unless the term names one), or "right"/"left" (default side), or "given" (the term's side
    as is, possibly None: midline findings). `zones`: the zone(s) to choose from when the term
    names none (None = anywhere in the lung).
    """

    draw: Draw | None = None
    adjust: Adjust | None = None
    sides: str = "random"
    zones: tuple[str | None, ...] = (None,)


# --- shared helpers ------------------------------------------------------------------------------
def _noisy_blob(chest: Chest, centre, axes, rng, roughness: float, angle: float = 0.0) -> np.ndarray:
    """A soft ellipse whose outline is perturbed by smooth noise (irregular, lobulated edges)."""
    du, dv = chest.u - centre[0], chest.v - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    radius = np.hypot((du * cos + dv * sin) / axes[0], (-du * sin + dv * cos) / axes[1])
    noise = smooth_noise(rng, chest.u.shape, max(2.0, 0.4 * min(axes) * chest.size))
    return soft_step(1.0 - radius + roughness * noise, 0.15)


def _lung_and_retrocardiac(chest: Chest, side: str) -> np.ndarray:
    return np.maximum(chest.lungs[side], chest.retrocardiac if side == LEFT else 0.0)


def _in_lung(chest: Chest, side: str, region: np.ndarray) -> np.ndarray:
    return region * np.clip(3 * _lung_and_retrocardiac(chest, side), 0, 1)


def _draw_lesions(chest: Chest, placement: Placement, rng, count: int, lesion: Callable) -> np.ndarray:
    """Draw `count` lesions at points of the placement's zone; their union is the region."""
    weight = chest.zone(placement.side, placement.zone)
    region = np.zeros_like(chest.density)
    for _ in range(count):
        centre = chest.sample_point(weight, rng)
        region = np.maximum(region, lesion(centre))
    return region


# --- air-space and interstitial ----------------------------------------------------------------
def _opacity(strength: float, patchiness: float) -> Draw:
    def draw(chest: Chest, placement: Placement, rng) -> np.ndarray:
        magnitude = placement.magnitude()
        centre = chest.sample_point(chest.zone(placement.side, placement.zone), rng)
        radius = 0.035 + 0.017 * magnitude
        axes = (radius * rng.uniform(0.9, 1.4), radius * rng.uniform(0.6, 1.0))
        patch = _noisy_blob(chest, centre, axes, rng, 0.35, rng.uniform(-0.5, 0.5))
        if placement.has("streaky", "interstitial", "patchy", "reticular", "scattered"):
            sigma = (0.004 * chest.size, 0.02 * chest.size) if placement.has("streaky") else 0.008 * chest.size
            texture = np.clip(0.6 + 0.7 * smooth_noise(rng, chest.u.shape, sigma), 0, 1)
        else:
            texture = np.clip(1.0 - patchiness * np.abs(smooth_noise(rng, chest.u.shape, 0.01 * chest.size)), 0, 1)
        amount = strength * (0.75 + 0.12 * magnitude) * patch * texture
        chest.fill_air(amount)
        return _in_lung(chest, placement.side, patch)

    return draw


def _atelectasis(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Band-like (linear / plate) atelectasis: a thin, slightly oblique dense line."""
    magnitude = placement.magnitude(1.2)
    centre = chest.sample_point(chest.zone(placement.side, placement.zone), rng)
    length = 0.045 + 0.02 * magnitude
    thickness = 0.006 + 0.004 * magnitude
    angle = rng.normal(0.0, 0.25) - SIDE_SIGN[placement.side] * 0.1
    band = _noisy_blob(chest, centre, (length, thickness), rng, 0.25, angle)
    chest.fill_air(0.55 * band)
    return _in_lung(chest, placement.side, band)


def _atelectasis_volume_loss(patient: Patient, placement: Placement, rng) -> None:
    if placement.zone in ("base", "lower lobe", None):
        patient.dome[placement.side] -= 0.008 * placement.magnitude(1.2)


def _effusion(height_scale: float) -> Draw:
    """Basal fluid: a meniscus rising towards the chest wall, blunting the costophrenic angle."""

    def draw(chest: Chest, placement: Placement, rng) -> np.ndarray:
        side = placement.side
        magnitude = placement.magnitude(1.2)
        height = height_scale * (0.04 + 0.06 * magnitude) * rng.uniform(0.85, 1.15)
        angle_level = chest.dome_level(side, SIDE_SIGN[side] * (chest.patient.lung_centre + chest.patient.lung_half_width))
        lateral = chest.relative_lateral(side)
        surface = angle_level - height * (0.5 + 0.5 * lateral**1.5)
        fluid = soft_step(chest.v - surface, 0.012) * chest.side_mask(side)
        chest.fill_air(0.95 * fluid)
        shape = chest.lung_shape(side) * chest.side_mask(side)
        chest.density += 0.03 * fluid * shape
        return fluid * np.clip(3 * chest.lungs[side], 0, 1)

    return draw


def _interstitial(chest: Chest, placement: Placement, rng) -> None:
    reticular = np.clip(0.5 - np.abs(smooth_noise(rng, chest.u.shape, 0.006 * chest.size)), 0, None)
    basal = 0.5 + 0.5 * soft_step(chest.v - 0.45, 0.1)
    chest.fill_air(0.35 * reticular * basal * (0.8 + 0.2 * placement.magnitude(1.2)))
    return None


def _edema(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Perihilar haze (bat wing) with basal septal lines."""
    side, magnitude = placement.side, placement.magnitude(1.2)
    hu, hv = chest.hilum(side)
    centre = (hu + SIDE_SIGN[side] * 0.03, hv + 0.04)
    haze = _noisy_blob(chest, centre, (0.11 + 0.02 * magnitude, 0.15 + 0.02 * magnitude), rng, 0.3)
    texture = np.clip(0.7 + 0.4 * smooth_noise(rng, chest.u.shape, 0.012 * chest.size), 0, 1)
    chest.fill_air((0.2 + 0.06 * magnitude) * haze * texture)
    septal = soft_step(np.cos(2 * np.pi * chest.v / 0.018) - 0.8, 0.05)
    septal *= soft_step(chest.relative_lateral(side) - 0.8, 0.03) * soft_step(chest.relative_height(side) - 0.7, 0.05)
    chest.fill_air(0.25 * septal)
    return _in_lung(chest, side, haze)


def _congestion_adjust(patient: Patient, placement: Placement, rng) -> None:
    patient.upper_markings = max(patient.upper_markings, 1.6 + 0.2 * placement.magnitude(1.0))
    patient.markings *= 1.15


def _hilar(strength: float, radius: float) -> Draw:
    def draw(chest: Chest, placement: Placement, rng) -> np.ndarray:
        hu, hv = chest.hilum(placement.side)
        centre = (hu + SIDE_SIGN[placement.side] * 0.01, hv)
        size = radius * (0.85 + 0.1 * placement.magnitude(1.5))
        blob = _noisy_blob(chest, centre, (size, 1.3 * size), rng, 0.3)
        chest.density += strength * blob
        return blob

    return draw


# --- nodules and masses ------------------------------------------------------------------------
def _nodules(radius: float, fill: float, extra: float, many: tuple[int, int]) -> Draw:
    def draw(chest: Chest, placement: Placement, rng) -> np.ndarray:
        size = radius * (0.75 + 0.2 * placement.magnitude(1.2))
        count = int(rng.integers(many[0], many[1] + 1)) if placement.has("multiple", "scattered") else 1

        def lesion(centre):
            r = size * rng.uniform(0.8, 1.2)
            disc = ellipse(chest.u, chest.v, centre, (r, r * rng.uniform(0.85, 1.0)), chest.edge)
            chest.fill_air(fill * disc)
            chest.density += extra * disc
            return disc

        return _draw_lesions(chest, placement, rng, count, lesion)

    return draw


def _mass(chest: Chest, placement: Placement, rng) -> np.ndarray:
    centre = chest.sample_point(chest.zone(placement.side, placement.zone), rng)
    radius = 0.03 + 0.01 * placement.magnitude(2.0)
    blob = _noisy_blob(chest, centre, (radius, radius * rng.uniform(0.8, 1.0)), rng, 0.15)
    chest.fill_air(0.9 * blob)
    chest.density += 0.03 * blob
    return blob


def _calcified_nodes(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Dense calcified lymph nodes at the hilum or along the trachea."""
    side = placement.side or (RIGHT if rng.random() < 0.5 else LEFT)
    if placement.zone == "paratracheal" or placement.has("mediastinum", "trachea, carina"):
        anchor = (SIDE_SIGN[side] * (chest.patient.mediastinum_half_width - 0.005), rng.uniform(0.22, 0.34))
    else:
        anchor = chest.hilum(side)
    region = np.zeros_like(chest.density)
    for _ in range(int(rng.integers(1, 4))):
        centre = (anchor[0] + rng.normal(0, 0.012), anchor[1] + rng.normal(0, 0.015))
        r = rng.uniform(0.006, 0.01)
        spot = _noisy_blob(chest, centre, (r, r), rng, 0.3)
        chest.density += 0.16 * spot
        region = np.maximum(region, spot)
    return region


# --- pleura ------------------------------------------------------------------------------------
def _pneumothorax(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Air between lung and chest wall: no lung markings there, a thin visceral pleural line."""
    side = placement.side
    gap = 0.012 + 0.014 * placement.magnitude(1.5)
    collapsed = chest.lung_shape(side, inset=gap)
    extent = np.ones_like(collapsed)
    if placement.zone == "apex" or placement.magnitude(1.5) <= 1.0:
        extent = soft_step(0.5 - chest.relative_height(side), 0.08)
    space = chest.lungs[side] * (1.0 - collapsed) * extent
    chest.density -= space * (chest.vessels + 0.03)
    pleural_line = 4.0 * collapsed * (1.0 - collapsed) * chest.lungs[side] * extent
    chest.density += 0.05 * pleural_line
    return space


def _pleural_thickening(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """A pleural rind: an apical cap, or a band along the lateral chest wall."""
    side = placement.side
    thickness = 0.008 + 0.004 * placement.magnitude(1.0)
    rim = chest.lungs[side] * (1.0 - chest.lung_shape(side, inset=thickness))
    if placement.zone == "apex":
        rim *= soft_step(0.22 - chest.relative_height(side), 0.04)
    else:
        rim *= soft_step(chest.relative_lateral(side) - 0.7, 0.05)
        if placement.zone is not None:
            rim *= soft_step(chest.zone(side, placement.zone) - 0.2, 0.05)
    chest.fill_air(0.85 * rim)
    return rim


def _scar(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Linear fibrotic streaks (cicatrix)."""

    def lesion(centre):
        angle = rng.uniform(-0.8, 0.8)
        length = rng.uniform(0.025, 0.05)
        direction = np.array([np.cos(angle), np.sin(angle)]) * length
        bend = rng.normal(0, 0.01, 2)
        points = [np.array(centre) - direction, np.array(centre) + bend, np.array(centre) + direction]
        line = polyline_band(chest.u, chest.v, smooth_curve(points, 8), 0.004, chest.edge)
        chest.fill_air(0.65 * line)
        return line

    return _draw_lesions(chest, placement, rng, int(rng.integers(1, 4)), lesion)


def _bulla(wall: float, fill: float, radius: float) -> Draw:
    """A round lucency without lung markings and with a wall (bulla: thin; cavity: thick)."""

    def draw(chest: Chest, placement: Placement, rng) -> np.ndarray:
        centre = chest.sample_point(chest.zone(placement.side, placement.zone), rng)
        r = radius * (0.8 + 0.15 * placement.magnitude(1.5))
        inside = ellipse(chest.u, chest.v, centre, (r, r * rng.uniform(0.8, 1.0)), chest.edge)
        inner = ellipse(chest.u, chest.v, centre, (r - wall, r * 0.9 - wall), chest.edge)
        chest.density -= inner * (chest.vessels + 0.03) * chest.lungs[placement.side]
        chest.fill_air(fill * (inside - inner))
        return inside

    return draw


# --- heart, mediastinum, diaphragm ---------------------------------------------------------------
CTR_BY_SEVERITY = {0.5: 0.51, 1.0: 0.54, 2.0: 0.59, 3.0: 0.64}


def _cardiomegaly_adjust(patient: Patient, placement: Placement, rng) -> None:
    ctr = CTR_BY_SEVERITY.get(placement.spec.magnitude, 0.555)
    patient.ctr = max(patient.ctr, ctr + rng.normal(0, 0.015))


def _pericardial_effusion_adjust(patient: Patient, placement: Placement, rng) -> None:
    patient.ctr = max(patient.ctr, 0.6 + rng.normal(0, 0.015))
    patient.heart_height *= 1.35
    patient.heart_tilt = 0.15


def _heart_region(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """The cardiac silhouette: the heart above the diaphragm."""
    return chest.heart * soft_step(chest.dome_level(LEFT, chest.u) + 0.01 - chest.v, chest.edge)


def _inflation(dome: float, curvature: float, ctr: float, air: float, markings: float) -> Adjust:
    def adjust(patient: Patient, placement: Placement, rng) -> None:
        shift = dome * (0.8 + 0.15 * placement.magnitude(1.5))
        for side in patient.dome:
            patient.dome[side] += shift
        patient.dome_curvature *= curvature
        patient.ctr += ctr
        patient.lung_air *= air
        patient.markings *= markings
        if markings < 1:
            patient.upper_markings *= markings

    return adjust


def _elevated_diaphragm_adjust(patient: Patient, placement: Placement, rng) -> None:
    rise = 0.04 + 0.02 * placement.magnitude(1.5)
    patient.dome[placement.side] -= rise
    placement.memo["rise"] = rise


def _elevated_diaphragm(chest: Chest, placement: Placement, rng) -> np.ndarray:
    side = placement.side
    level = chest.dome_level(side, chest.u)
    lost = soft_step(chest.v - level, chest.edge) * soft_step(level + placement.memo["rise"] - chest.v, chest.edge)
    return lost * chest.lung_shape(side) * chest.side_mask(side)


def _widening_adjust(patient: Patient, placement: Placement, rng) -> None:
    placement.memo["from"] = patient.mediastinum_half_width
    patient.mediastinum_half_width += 0.014 + 0.006 * placement.magnitude(1.5)


def _widening(chest: Chest, placement: Placement, rng) -> np.ndarray:
    offset = np.abs(chest.u - chest.patient.axial_rotation)
    wider = soft_step(offset - placement.memo["from"], chest.edge) * soft_step(chest.patient.mediastinum_half_width - offset, chest.edge)
    return wider * soft_step(chest.v - 0.12, 0.01) * soft_step(0.4 - chest.v, 0.01)


def _aorta_adjust(patient: Patient, placement: Placement, rng) -> None:
    patient.aortic_knob_radius += 0.006 + 0.003 * placement.magnitude(1.2)


def _tortuous_aorta(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Unfolded aorta: a prominent knob and a descending aorta bowing into the left lung."""
    ku, kv = chest.knob_centre
    bow = 0.03 + 0.01 * placement.magnitude(1.2)
    points = smooth_curve([(ku, kv), (ku + bow, kv + 0.13), (ku + 0.3 * bow, kv + 0.3)], 10)
    vessel = polyline_band(chest.u, chest.v, points, 0.022, 2 * chest.edge)
    chest.fill_air(0.9 * vessel)
    knob = ellipse(chest.u, chest.v, chest.knob_centre, (chest.patient.aortic_knob_radius,) * 2, chest.edge)
    return np.maximum(vessel * np.clip(3 * chest.lungs[LEFT], 0, 1), knob)


def _aortic_calcification(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """A thin dense arc along the top of the aortic knob."""
    ku, kv = chest.knob_centre
    r = 0.85 * chest.patient.aortic_knob_radius
    distance = np.abs(np.hypot(chest.u - ku, chest.v - kv) - r)
    upper = soft_step(kv + 0.3 * r - chest.v, 0.005)
    chest.density += 0.12 * soft_step(0.0035 - distance, chest.edge) * upper
    return soft_step(0.007 - distance, chest.edge) * upper


def _hiatal_hernia(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """A retrocardiac gas bubble with an air-fluid level."""
    p = chest.patient
    size = 0.035 + 0.01 * placement.magnitude(1.5)
    centre = (p.axial_rotation + 0.02, p.dome[LEFT] - 0.06)
    sac = ellipse(chest.u, chest.v, centre, (1.2 * size, size), chest.edge)
    gas = sac * soft_step(centre[1] + 0.2 * size - chest.v, chest.edge)
    chest.density += 0.03 * sac - 0.1 * gas
    return sac


# --- spine and bones ---------------------------------------------------------------------------
def _scoliosis_adjust(patient: Patient, placement: Placement, rng) -> None:
    side = placement.side or (RIGHT if rng.random() < 0.5 else LEFT)
    patient.spine_curve = SIDE_SIGN[side] * (0.012 + 0.01 * placement.magnitude(1.2))


def _osteopenia_adjust(patient: Patient, placement: Placement, rng) -> None:
    patient.bone_density = 0.55


def _osteophytes(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Small bony spurs at vertebral corners."""
    region = np.zeros_like(chest.density)
    for _ in range(int(rng.integers(3, 7))):
        level = 0.08 + 0.052 * int(rng.integers(4, 13))
        side = 1.0 if rng.random() < 0.5 else -1.0
        u = float(chest.spine_offset(level)) + side * 0.04
        spur = ellipse(chest.u, chest.v, (u, level + rng.choice([-0.024, 0.024])), (0.009, 0.004), chest.edge)
        chest.density += 0.08 * spur
        region = np.maximum(region, spur)
    return region


def _spinal_fusion(chest: Chest, placement: Placement, rng) -> np.ndarray:
    start = rng.uniform(0.3, 0.6)
    rods = np.zeros_like(chest.density)
    for offset in (-0.022, 0.022):
        points = [(float(chest.spine_offset(v)) + offset, v) for v in np.linspace(start, start + 0.22, 5)]
        rods = np.maximum(rods, polyline_band(chest.u, chest.v, points, 0.005, chest.edge))
    chest.density += 0.3 * rods
    return rods


def _bone_point(chest: Chest, bone: np.ndarray, side: str, rng) -> tuple[float, float]:
    lateral = soft_step(chest.relative_lateral(side) - 0.45, 0.05)
    return chest.sample_point(soft_step(bone - 0.5, 0.1) * chest.side_mask(side) * lateral, rng)


def _fracture(bone_name: str) -> Draw:
    """A healed fracture: callus on a rib or clavicle; a recent one adds a lucent gap."""

    def draw(chest: Chest, placement: Placement, rng) -> np.ndarray:
        bone = chest.posterior_ribs if bone_name == "rib" else chest.clavicles / max(float(chest.clavicles.max()), 1e-6)
        count = int(rng.integers(2, 4)) if placement.has("multiple") else 1
        region = np.zeros_like(chest.density)
        for _ in range(count):
            centre = _bone_point(chest, bone, placement.side, rng)
            callus = ellipse(chest.u, chest.v, centre, (0.012, 0.016), chest.edge)
            chest.density += 0.06 * callus
            if not placement.has("healed", "chronic"):
                gap = ellipse(chest.u, chest.v, centre, (0.002, 0.018), chest.edge, rng.uniform(-0.3, 0.3))
                chest.density -= 0.05 * gap
            region = np.maximum(region, callus)
        return region

    return draw


# --- lines, tubes and devices ------------------------------------------------------------------
def _line(chest: Chest, points, half_width: float, density: float, samples: int = 16) -> np.ndarray:
    band = polyline_band(chest.u, chest.v, smooth_curve(points, samples), half_width, chest.edge)
    chest.density += density * band
    return polyline_band(chest.u, chest.v, smooth_curve(points, samples), half_width + 0.004, chest.edge)


def _catheter(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """A central venous line: from the subclavian/jugular vein into the superior vena cava."""
    s, front = SIDE_SIGN[placement.side], chest.patient.axial_rotation
    tip = rng.uniform(0.34, 0.42)
    points = [(s * 0.34, 0.02), (s * 0.16, 0.1), (front - 0.03, 0.2), (front - 0.035, tip)]
    return _line(chest, points, 0.0035, 0.16)


def _pacemaker(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """A generator below the clavicle with leads into the right atrium and ventricle."""
    s, front = SIDE_SIGN[placement.side], chest.patient.axial_rotation
    can_centre = (s * rng.uniform(0.24, 0.29), rng.uniform(0.1, 0.15))
    can = ellipse(chest.u, chest.v, can_centre, (0.04, 0.027), chest.edge, rng.uniform(-0.3, 0.3))
    chest.density += 0.5 * can
    heart_v = chest.patient.dome[LEFT] - 0.05
    leads = [
        _line(chest, [can_centre, (s * 0.12, 0.13), (front - 0.03, 0.25), (front - 0.04, heart_v - 0.1)], 0.003, 0.2),
        _line(chest, [can_centre, (s * 0.1, 0.15), (front - 0.025, 0.3), (front + 0.06, heart_v)], 0.003, 0.2),
    ]
    return np.maximum.reduce([can, *leads])


def _valve(chest: Chest, placement: Placement, rng) -> np.ndarray:
    centre = (chest.patient.axial_rotation + 0.01, chest.patient.dome[LEFT] - 0.15)
    disc = ellipse(chest.u, chest.v, centre, (0.018, 0.012), chest.edge, 0.4)
    hole = ellipse(chest.u, chest.v, centre, (0.013, 0.008), chest.edge, 0.4)
    chest.density += 0.3 * (disc - hole)
    return disc


def _sternotomy_wires(chest: Chest, placement: Placement, rng) -> np.ndarray:
    region = np.zeros_like(chest.density)
    for v in np.linspace(0.2, 0.5, int(rng.integers(4, 7))):
        centre = (chest.patient.axial_rotation + rng.normal(0, 0.003), v + rng.normal(0, 0.006))
        loop = ellipse(chest.u, chest.v, centre, (0.012, 0.007), chest.edge)
        hole = ellipse(chest.u, chest.v, centre, (0.008, 0.003), chest.edge)
        chest.density += 0.35 * (loop - hole)
        region = np.maximum(region, loop)
    return region


def _small_dense_objects(chest: Chest, centre, rng, count: int, density: float) -> np.ndarray:
    region = np.zeros_like(chest.density)
    for _ in range(count):
        where = (centre[0] + rng.normal(0, 0.015), centre[1] + rng.normal(0, 0.015))
        clip = ellipse(chest.u, chest.v, where, (0.008, 0.0025), chest.edge, rng.uniform(0, np.pi))
        chest.density += density * clip
        region = np.maximum(region, ellipse(chest.u, chest.v, where, (0.012, 0.006), chest.edge, 0.0))
    return region


def _surgical_clips(chest: Chest, placement: Placement, rng) -> np.ndarray:
    side = placement.side or RIGHT
    if placement.has("abdomen"):
        centre = (SIDE_SIGN[side] * 0.12, chest.patient.dome[side] + 0.07)
    elif placement.zone is not None or placement.has("lung"):
        centre = chest.sample_point(chest.zone(side, placement.zone), rng)
    else:
        centre = (SIDE_SIGN[side] * 0.3, 0.22)
    return _small_dense_objects(chest, centre, rng, int(rng.integers(3, 7)), 0.35)


def _foreign_body(chest: Chest, placement: Placement, rng) -> np.ndarray:
    side = placement.side or (RIGHT if rng.random() < 0.5 else LEFT)
    centre = chest.sample_point(chest.zone(side, placement.zone), rng)
    blob = _noisy_blob(chest, centre, (0.012, 0.009), rng, 0.3, rng.uniform(0, np.pi))
    chest.density += 0.4 * blob
    return blob


def _tube(chest: Chest, placement: Placement, rng) -> np.ndarray:
    """Endotracheal tube (default), nasogastric tube (abdomen) or chest tube (a side)."""
    front = chest.patient.axial_rotation
    if placement.has("abdomen"):
        points = [(front * 0.5, -0.1), (front + 0.015, 0.45), (0.1, chest.patient.dome[LEFT] + 0.05), (0.14, chest.patient.dome[LEFT] + 0.1)]
    elif placement.side in (RIGHT, LEFT) and placement.has("thorax"):
        s = SIDE_SIGN[placement.side]
        points = [(s * 0.36, 0.62), (s * 0.3, 0.45), (s * 0.2, 0.22)]
    else:
        tip = rng.uniform(0.2, 0.26)
        points = [(front * 0.5, -0.15), (front * 0.5 + 0.002, tip)]
    wall = _line(chest, points, 0.008, 0.05)
    _line(chest, points, 0.002, 0.12)
    return wall


def _stent(chest: Chest, placement: Placement, rng) -> np.ndarray:
    centre = (chest.patient.axial_rotation + 0.08, chest.patient.dome[LEFT] - 0.14)
    band = ellipse(chest.u, chest.v, centre, (0.018, 0.004), chest.edge, 1.0)
    mesh = 0.5 + 0.5 * np.cos(2 * np.pi * (chest.u + chest.v) / 0.006)
    chest.density += 0.2 * band * mesh
    return band


# --- other -------------------------------------------------------------------------------------
def _subcutaneous_emphysema(chest: Chest, placement: Placement, rng) -> np.ndarray:
    side, p = placement.side, chest.patient
    outer = p.lung_centre + p.lung_half_width + 0.02
    offset = chest.u * SIDE_SIGN[side]
    wall = soft_step(offset - outer, chest.edge) * chest.body * soft_step(chest.v - 0.1, 0.02) * soft_step(0.65 - chest.v, 0.02)
    streaks = np.clip(np.abs(smooth_noise(rng, chest.u.shape, (0.02 * chest.size, 0.004 * chest.size))) - 0.5, 0, None)
    chest.density -= 0.25 * streaks * wall
    return wall


def _pneumoperitoneum(chest: Chest, placement: Placement, rng) -> np.ndarray:
    level = chest.dome_level(RIGHT, chest.u)
    crescent = soft_step(chest.v - level - 0.002, chest.edge) * soft_step(level + 0.014 - chest.v, chest.edge)
    crescent *= soft_step(-chest.u - 0.05, 0.01) * chest.lung_shape(RIGHT)
    chest.density -= 0.2 * crescent
    return crescent


def _nipple(chest: Chest, placement: Placement, rng) -> np.ndarray:
    centre = (SIDE_SIGN[placement.side] * rng.uniform(0.2, 0.26), chest.patient.dome[placement.side] - rng.uniform(0.04, 0.09))
    disc = ellipse(chest.u, chest.v, centre, (0.011, 0.011), 3 * chest.edge)
    chest.density += 0.04 * disc
    return disc


def _azygos_fissure(chest: Chest, placement: Placement, rng) -> np.ndarray:
    apex = chest.patient.apex
    points = [(-0.13, apex + 0.01), (-0.1, apex + 0.09), (-chest.patient.mediastinum_half_width - 0.012, 0.27)]
    line = _line(chest, points, 0.002, 0.04, 10)
    chest.density += 0.06 * ellipse(chest.u, chest.v, points[-1], (0.01, 0.007), chest.edge)
    return line


def _technique_adjust(patient: Patient, placement: Placement, rng) -> None:
    patient.noise *= 1.8
    patient.tilt += rng.choice([-1.0, 1.0]) * 0.04
    patient.window = (patient.window[0] + 0.06, patient.window[1] + 0.05)


RENDERERS: dict[str, Renderer] = {
    "Opacity": Renderer(_opacity(0.42, 0.5), zones=LUNG_ZONES),
    "Consolidation": Renderer(_opacity(0.62, 0.3), zones=("upper lobe", "lower lobe")),
    "Atelectasis": Renderer(_atelectasis, _atelectasis_volume_loss, zones=("base",)),
    "Pleural Effusion": Renderer(_effusion(1.0)),
    "Blunted Costophrenic Angle": Renderer(_effusion(0.45)),
    "Cardiomegaly": Renderer(_heart_region, _cardiomegaly_adjust, sides="given"),
    "Pericardial Effusion": Renderer(_heart_region, _pericardial_effusion_adjust, sides="given"),
    "Nodule": Renderer(_nodules(0.016, 0.7, 0.02, (2, 4)), zones=LUNG_ZONES),
    "Calcified Granuloma": Renderer(_nodules(0.0095, 1.0, 0.12, (2, 5)), zones=LUNG_ZONES),
    "Mass": Renderer(_mass, zones=LUNG_ZONES),
    "Calcified Lymph Node": Renderer(_calcified_nodes, sides="given"),
    "Pneumothorax": Renderer(_pneumothorax, zones=("apex",)),
    "Hyperinflation": Renderer(adjust=_inflation(0.07, 0.35, -0.02, 1.05, 1.0), sides="given"),
    "Emphysema": Renderer(adjust=_inflation(0.075, 0.3, -0.03, 1.15, 0.7), sides="given"),
    "Hypoinflation": Renderer(adjust=_inflation(-0.055, 1.2, 0.03, 0.95, 1.15), sides="given"),
    "Elevated Diaphragm": Renderer(_elevated_diaphragm, _elevated_diaphragm_adjust, sides="right"),
    "Pulmonary Edema": Renderer(_edema, _congestion_adjust, sides="both"),
    "Pulmonary Congestion": Renderer(_hilar(0.05, 0.045), _congestion_adjust, sides="both"),
    "Hilar Enlargement": Renderer(_hilar(0.08, 0.04), sides="both"),
    "Interstitial Markings": Renderer(_interstitial, sides="given"),
    "Bronchovascular Markings": Renderer(adjust=_inflation(0.0, 1.0, 0.0, 1.0, 1.5), sides="given"),
    "Scar": Renderer(_scar, zones=("apex", "base", "lingula")),
    "Pleural Thickening": Renderer(_pleural_thickening, zones=("apex", None)),
    "Bulla": Renderer(_bulla(0.002, 0.4, 0.035), zones=("apex", "upper lobe")),
    "Cavity": Renderer(_bulla(0.008, 0.8, 0.025), zones=("upper lobe",)),
    "Mediastinal Widening": Renderer(_widening, _widening_adjust, sides="given"),
    "Tortuous Aorta": Renderer(_tortuous_aorta, _aorta_adjust, sides="given"),
    "Aortic Calcification": Renderer(_aortic_calcification, sides="given"),
    "Hiatal Hernia": Renderer(_hiatal_hernia, sides="given"),
    "Scoliosis": Renderer(adjust=_scoliosis_adjust, sides="given"),
    "Spinal Degeneration": Renderer(_osteophytes, sides="given"),
    "Spinal Fusion Hardware": Renderer(_spinal_fusion, sides="given"),
    "Osteopenia": Renderer(adjust=_osteopenia_adjust, sides="given"),
    "Rib Fracture": Renderer(_fracture("rib")),
    "Clavicle Fracture": Renderer(_fracture("clavicle")),
    "Central Venous Catheter": Renderer(_catheter, sides="right"),
    "Pacemaker": Renderer(_pacemaker, sides="left"),
    "Valve Prosthesis": Renderer(_valve, sides="given"),
    "Sternotomy Wires": Renderer(_sternotomy_wires, sides="given"),
    "Surgical Clips": Renderer(_surgical_clips, sides="given"),
    "Tube": Renderer(_tube, sides="given"),
    "Stent": Renderer(_stent, sides="given"),
    "Foreign Body": Renderer(_foreign_body, sides="given"),
    "Subcutaneous Emphysema": Renderer(_subcutaneous_emphysema),
    "Pneumoperitoneum": Renderer(_pneumoperitoneum, sides="given"),
    "Nipple Shadow": Renderer(_nipple, sides="both"),
    "Azygos Fissure": Renderer(_azygos_fissure, sides="given"),
    "Suboptimal Technique": Renderer(adjust=_technique_adjust, sides="given"),
}


# Zones that fix the side: the middle lobe is right-sided, the lingula left-sided.
_SIDE_OF_ZONE = {"middle lobe": RIGHT, "lingula": LEFT}


def place_finding(spec: FindingSpec, rng: np.random.Generator) -> list[Placement]:
    """Decide side(s) and zone of a finding: from the MeSH term where it says, else by the
    renderer's defaults (random side, a typical zone)."""
    renderer = RENDERERS[spec.type]
    side = spec.side or _SIDE_OF_ZONE.get(spec.zone)
    if side == "bilateral":
        sides = [RIGHT, LEFT]
    elif side is not None:
        sides = [side]
    elif renderer.sides == "random":
        sides = [RIGHT if rng.random() < 0.5 else LEFT]
    elif renderer.sides == "both":
        sides = [RIGHT, LEFT]
    elif renderer.sides in (RIGHT, LEFT):
        sides = [renderer.sides]
    else:
        sides = [None]
    placements = []
    for placed_side in sides:
        zone = spec.zone if spec.zone is not None else renderer.zones[int(rng.integers(len(renderer.zones)))]
        if zone in _SIDE_OF_ZONE and placed_side is not None:
            zone = "middle lobe" if placed_side == RIGHT else "lingula"
        placements.append(Placement(spec, placed_side, zone))
    return placements
