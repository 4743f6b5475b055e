"""The normal chest of the phantom: patient variation and the anatomy of a PA radiograph.

The image is built as a *density* map (roughly, X-ray attenuation: air 0, soft tissue ~0.6,
bone higher) on a patient coordinate frame: ``u`` across the chest in units of the image width
(negative = the patient's RIGHT, drawn on the IMAGE LEFT as in every PA radiograph), ``v`` down
from the top of the lungs' frame. The frame is scaled, shifted and rotated per patient, so all
shapes follow the patient. Findings (see :mod:`reclf_monai.phantom.finding_renderers`) adjust a
:class:`Patient` before the chest is built (e.g. a bigger heart) or add density after (e.g. an
opacity fills lung air).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import map_coordinates

from .shapes import ellipse, smooth_noise, soft_step, superellipse

RIGHT, LEFT = "right", "left"
# Sign of u on each side of the patient (patient right = image left = negative u).
SIDE_SIGN = {RIGHT: -1.0, LEFT: 1.0}
LUNG_BOTTOM = 0.86  # lower end of the lung superellipse; the diaphragm cuts it higher
THORAX_HALF_WIDTH = 0.345  # inner chest wall to midline, used for the cardiothoracic ratio


@dataclass
class Patient:
    """Per-patient parameters; findings may change them before the chest is built."""

    scale: float = 1.0  # body size relative to the image
    shift: tuple[float, float] = (0.0, 0.0)  # position in the image (image widths)
    tilt: float = 0.0  # in-plane rotation (radians)
    axial_rotation: float = 0.0  # rotation about the vertical axis: anterior structures shift
    lung_centre: float = 0.19
    lung_half_width: float = 0.155
    apex: float = 0.12
    dome: dict[str, float] = field(default_factory=lambda: {RIGHT: 0.66, LEFT: 0.68})
    dome_curvature: float = 0.042
    ctr: float = 0.45  # cardiothoracic ratio
    heart_height: float = 0.12  # short axis of the heart ellipse
    heart_tilt: float = 0.5
    mediastinum_half_width: float = 0.048
    aortic_knob_radius: float = 0.03
    spine_curve: float = 0.0  # scoliosis: lateral offset of the mid-thoracic spine (u units)
    bone_density: float = 1.0
    soft_tissue: float = 1.0
    breast: float = 0.0  # strength of breast shadows (0 = none)
    gastric_bubble: float = 1.0
    lung_air: float = 1.0  # air content (emphysema > 1)
    markings: float = 1.0  # strength of lung vessel markings
    upper_markings: float = 1.0  # upper-zone vessels (redistribution in congestion)
    window: tuple[float, float] = (0.02, 0.92)  # density mapped to black / white
    gamma: float = 1.8
    noise: float = 0.018


def sample_patient(rng: np.random.Generator) -> Patient:
    """A random normal patient: body size, position, inspiration, heart size, exposure, noise."""
    inspiration = rng.normal(0.0, 0.018)
    dome_right = 0.66 + inspiration
    return Patient(
        scale=rng.uniform(0.9, 1.04),
        shift=(rng.normal(0, 0.012), rng.normal(0.01, 0.015)),
        tilt=rng.normal(0, 0.025),
        axial_rotation=rng.normal(0, 0.012),
        lung_centre=rng.uniform(0.182, 0.198),
        lung_half_width=rng.uniform(0.145, 0.162),
        apex=rng.uniform(0.10, 0.135),
        dome={RIGHT: dome_right, LEFT: dome_right + rng.uniform(0.008, 0.03)},
        dome_curvature=rng.uniform(0.035, 0.05),
        ctr=float(np.clip(rng.normal(0.45, 0.035), 0.36, 0.53)),
        heart_height=rng.uniform(0.11, 0.13),
        heart_tilt=rng.uniform(0.4, 0.6),
        mediastinum_half_width=rng.uniform(0.042, 0.054),
        aortic_knob_radius=rng.uniform(0.025, 0.033),
        soft_tissue=rng.uniform(0.85, 1.15),
        breast=float(rng.uniform(0.5, 1.0) if rng.random() < 0.5 else 0.0),
        gastric_bubble=rng.uniform(0.3, 1.2),
        markings=rng.uniform(0.8, 1.2),
        window=(rng.uniform(-0.02, 0.06), rng.uniform(0.86, 0.98)),
        gamma=rng.uniform(1.5, 2.1),
        noise=rng.uniform(0.012, 0.026),
    )


class Chest:
    """The rendered normal anatomy of one patient, plus the maps findings draw on.

    Attributes are float32 maps of the image size: ``u``, ``v`` (patient coordinates),
    ``density`` (what becomes the image), ``air`` (density removed by lung air: filling it
    back is what an opacity or effusion does), ``vessels`` (lung markings), ``lungs`` per side
    (lung fields), ``retrocardiac`` (left lung behind the heart), ``heart``, ``ribs``,
    ``posterior_ribs``, ``clavicles``, ``abdomen`` and ``body``; ``knob_centre`` is the aortic
    knob's (u, v).
    """

    def __init__(self, patient: Patient, size: int, rng: np.random.Generator):
        self.patient = patient
        self.size = size
        self.edge = 0.8 / (size * patient.scale)  # one pixel in patient units, for soft edges
        self._grid()
        self.density = np.zeros((size, size), np.float32)
        self._body()
        self._lungs(rng)
        self._mediastinum_and_heart()
        self._bones()
        self._abdomen()

    # --- geometry ------------------------------------------------------------------------------
    def _grid(self) -> None:
        p = self.patient
        centre = (np.arange(self.size, dtype=np.float32) + 0.5) / self.size - 0.5
        x, y = np.meshgrid(centre - p.shift[0], centre - p.shift[1])
        cos, sin = np.cos(p.tilt), np.sin(p.tilt)
        self.u = ((cos * x + sin * y) / p.scale).astype(np.float32)
        self.v = ((-sin * x + cos * y) / p.scale + 0.5).astype(np.float32)

    def side_mask(self, side: str) -> np.ndarray:
        """Half of the image belonging to the patient's `side` (by the midline)."""
        return (self.u * SIDE_SIGN[side] > 0).astype(np.float32)

    def dome_level(self, side: str, u: np.ndarray | float) -> np.ndarray | float:
        """Height (v) of the `side` hemidiaphragm at `u`: highest medially, lowest at the
        costophrenic angle."""
        p = self.patient
        lateral = (np.abs(u) - 0.14) / 0.15
        return p.dome[side] + p.dome_curvature * lateral * lateral

    def lung_centre(self, side: str) -> tuple[float, float]:
        p = self.patient
        return SIDE_SIGN[side] * p.lung_centre, 0.5 * (p.apex + LUNG_BOTTOM)

    def lung_shape(self, side: str, inset: float = 0.0) -> np.ndarray:
        """The lung's outline without the diaphragm cut (its costophrenic recess included),
        optionally shrunk by `inset` from the chest wall and apex (a collapsed lung, the inner
        edge of a pleural rind)."""
        p = self.patient
        centre_u, centre_v = self.lung_centre(side)
        centre = (centre_u - SIDE_SIGN[side] * 0.3 * inset, centre_v + 0.5 * inset)
        axes = (p.lung_half_width - 0.7 * inset, 0.5 * (LUNG_BOTTOM - p.apex) - 0.5 * inset)
        return superellipse(self.u, self.v, centre, axes, 2.3, 5.0, self.edge)

    def relative_height(self, side: str) -> np.ndarray:
        """0 at the apex, 1 at the diaphragm, along each column of the `side` lung."""
        top = self.patient.apex
        return np.clip((self.v - top) / (self.dome_level(side, self.u) - top), 0.0, 1.0)

    def relative_lateral(self, side: str) -> np.ndarray:
        """0 at the mediastinal border, 1 at the chest wall, for the `side` lung."""
        p = self.patient
        outer = p.lung_centre + p.lung_half_width
        inner = p.mediastinum_half_width + 0.02
        return np.clip((self.u * SIDE_SIGN[side] - inner) / (outer - inner), 0.0, 1.0)

    def hilum(self, side: str) -> tuple[float, float]:
        return SIDE_SIGN[side] * (self.patient.mediastinum_half_width + 0.045), (0.43 if side == RIGHT else 0.41)

    def spine_offset(self, v: np.ndarray | float) -> np.ndarray | float:
        """Lateral position of the spine's centre line (scoliosis bends it)."""
        t = np.clip((np.asarray(v) - 0.05) / 0.85, 0.0, 1.0)
        return self.patient.spine_curve * np.sin(np.pi * t)

    # --- layers ----------------------------------------------------------------------------------
    def _body(self) -> None:
        p = self.patient
        neck = 0.085
        shoulders = np.clip((self.v + 0.02) / 0.12, 0.0, 1.0)
        half_width = neck + (0.46 - neck) * np.sqrt(shoulders)
        inside = np.clip(1.0 - (self.u / half_width) ** 2, 0.0, 1.0)
        self.body = soft_step(half_width - np.abs(self.u), 3 * self.edge)
        thickness = 0.42 + 0.22 * np.sqrt(inside)
        self.density += p.soft_tissue * thickness * self.body
        if p.breast > 0:
            for side in (RIGHT, LEFT):
                centre = (SIDE_SIGN[side] * 0.23, 0.7)
                shadow = ellipse(self.u, self.v, centre, (0.2, 0.15), 6 * self.edge)
                self.density += 0.07 * p.breast * shadow * soft_step(self.v - 0.62, 0.05)

    def _lungs(self, rng: np.random.Generator) -> None:
        p = self.patient
        self.lungs: dict[str, np.ndarray] = {}
        self.vessels = np.zeros_like(self.density)
        self.air = np.zeros_like(self.density)
        for side in (RIGHT, LEFT):
            below_apex = self.lung_shape(side)
            above_dome = soft_step(self.dome_level(side, self.u) - self.v, 1.5 * self.edge)
            self.lungs[side] = below_apex * above_dome * self.side_mask(side)
        # Lungs are thinner (less air) at the apex and in the costophrenic recess.
        height = np.clip((self.v - p.apex) / (LUNG_BOTTOM - p.apex), 0.0, 1.0)
        thickness = 0.72 + 0.28 * np.sin(np.pi * np.clip(0.15 + 0.85 * height, 0, 1))
        mottle = 1.0 + 0.05 * smooth_noise(rng, self.density.shape, 0.03 * self.size)
        for side in (RIGHT, LEFT):
            self.air += 0.36 * p.lung_air * thickness * mottle * self.lungs[side]
            self.vessels += self._vessel_tree(side, rng) * self.lungs[side]
        self.vessels *= p.markings

    def _vessel_tree(self, side: str, rng: np.random.Generator) -> np.ndarray:
        """Lung markings: wavy streaks radiating from the hilum, fading towards the periphery.

        Noise that varies fast with angle and slowly with distance, sampled in polar
        coordinates around the hilum (with a smoothly wandering angle so streaks bend), gives
        branching-looking vessels; a fine ridge network adds the interstitial background.
        """
        hu, hv = self.hilum(side)
        du, dv = self.u - hu, self.v - hv
        radius = np.hypot(du, dv)
        wander = 0.25 * smooth_noise(rng, self.density.shape, 0.06 * self.size)
        rows = ((np.arctan2(dv, du) + wander) / (2 * np.pi) + 0.5) * 160
        cols = np.clip(radius / 0.35, 0, 1) * 39
        polar = smooth_noise(rng, (160, 40), (1.6, 3.0))
        streaks = map_coordinates(polar, [rows.ravel(), cols.ravel()], order=1, mode="grid-wrap").reshape(radius.shape)
        streaks = np.clip(streaks - 0.6, 0, None)
        fine = np.clip(0.7 - np.abs(smooth_noise(rng, self.density.shape, 0.008 * self.size)), 0, None)
        taper = np.exp(-radius / 0.16)
        upper = np.where(self.v < hv, self.patient.upper_markings, 1.0)
        hilar = 0.12 * np.exp(-((radius / 0.045) ** 2))
        return (0.1 * streaks * taper * upper + 0.025 * fine + hilar).astype(np.float32)

    def _mediastinum_and_heart(self) -> None:
        p = self.patient
        front = p.axial_rotation  # anterior structures shift with axial rotation
        # Upper mediastinum: vessels and trachea between the lungs, aortic knob on the left.
        width = p.mediastinum_half_width
        widening = np.clip((self.v - 0.32) / 0.16, 0.0, 1.0) ** 2
        right_border = front - width - 0.04 * widening
        left_border = front + width + 0.06 * widening
        upper = soft_step(self.u - right_border, 2 * self.edge) * soft_step(left_border - self.u, 2 * self.edge)
        upper *= soft_step(0.52 - self.v, 0.02)
        knob_centre = (front + width + 0.2 * p.aortic_knob_radius, 0.29)
        knob = ellipse(self.u, self.v, knob_centre, (p.aortic_knob_radius, p.aortic_knob_radius), 2 * self.edge)
        descending = soft_step(0.028 - np.abs(self.u - (front + 0.03)), 2 * self.edge) * soft_step(self.v - 0.3, 0.01)
        self.heart = self._heart_mask()
        self.knob_centre = knob_centre
        solid = np.maximum.reduce([upper, knob, descending, self.heart])
        for side in (RIGHT, LEFT):
            self.lungs[side] *= 1.0 - solid
        # The left lower lobe behind the heart keeps some air: the retrocardiac lung.
        self.retrocardiac = self.heart * soft_step(self.u - p.axial_rotation - 0.01, 0.01)
        self.retrocardiac *= soft_step(self.v - (p.dome[LEFT] - 0.14), 0.02) * self.lung_shape(LEFT)
        self.air = self.air * (1.0 - solid) + 0.1 * p.lung_air * self.retrocardiac
        self.vessels *= 1.0 - solid
        self.density += 0.05 * solid + 0.04 * self.heart
        # Trachea: an air column over the mediastinum.
        trachea_u = front * 0.5 + self.spine_offset(self.v) * 0.3
        trachea = soft_step(0.017 - np.abs(self.u - trachea_u), 2 * self.edge) * soft_step(0.3 - self.v, 0.01)
        self.density -= 0.09 * trachea * self.body
        self.density += self.vessels - self.air

    def _heart_mask(self) -> np.ndarray:
        """A tilted ellipse, apex down towards the patient's left, sized to the patient's CTR."""
        p = self.patient
        width = p.ctr * 2 * THORAX_HALF_WIDTH
        short = p.heart_height
        cos, sin = np.cos(p.heart_tilt), np.sin(p.heart_tilt)
        long = np.sqrt(max((width / 2) ** 2 - (short * sin) ** 2, 1e-4)) / cos
        half_vertical = np.hypot(long * sin, short * cos)
        centre_u = p.axial_rotation + width * (0.5 - 0.34)
        centre_v = self.dome_level(LEFT, 0.05) + 0.02 - half_vertical
        return ellipse(self.u, self.v, (centre_u, centre_v), (long, short), 2 * self.edge, p.heart_tilt)

    def _bones(self) -> None:
        p = self.patient
        bone = p.bone_density
        spine_u = self.spine_offset(self.v)
        du = self.u - spine_u
        column = soft_step(0.036 - np.abs(du), 2 * self.edge) * soft_step(self.v + 0.05, 0.01)
        period = 0.052
        phase = (self.v - 0.08) / period
        within = (phase - np.floor(phase) - 0.5) * period
        endplates = np.exp(-((np.abs(within) - 0.023) / 0.005) ** 2)
        pedicles = np.exp(-((np.abs(du) - 0.024) / 0.007) ** 2 - (within / 0.011) ** 2)
        self.density += bone * column * (0.03 + 0.02 * endplates) + bone * 0.04 * pedicles * column
        self.ribs = self._ribs()
        self.density += bone * self.ribs
        self.clavicles = self._clavicles()
        self.density += bone * self.clavicles

    def _ribs(self) -> np.ndarray:
        """Posterior ribs (arched, brighter) and anterior ribs (descending medially, fainter).

        Each family is one periodic function of a curved coordinate, so ten ribs per side
        cost the same as one.
        """
        p = self.patient
        d = np.abs(self.u - self.spine_offset(self.v))
        outer = p.lung_centre + p.lung_half_width + 0.02
        lateral = soft_step(outer - d, 3 * self.edge) * soft_step(d - 0.035, 2 * self.edge)
        posterior_v = self.v - 1.8 * (d - 0.15) ** 2 - 4.0 * np.clip(d - 0.26, 0, None) ** 2
        phase = (posterior_v - (p.apex - 0.04)) / (0.056 + 0.018 * (posterior_v - 0.1))
        band = np.cos(2 * np.pi * (phase - 0.18))
        posterior = soft_step(band - 0.55, 0.12) * soft_step(phase, 0.3) * soft_step(10.5 - phase, 0.3)
        cortex = soft_step(0.25 - np.abs(band - 0.62), 0.06)
        anterior_v = self.v - 0.45 * (outer - d)
        front_phase = (anterior_v - (p.apex - 0.2)) / 0.085
        front_band = np.cos(2 * np.pi * front_phase)
        anterior = soft_step(front_band - 0.45, 0.15) * soft_step(d - 0.09, 0.02) * soft_step(front_phase, 0.3)
        anterior *= soft_step(6.5 - front_phase, 0.3)
        self.posterior_ribs = lateral * posterior
        return (lateral * (0.035 * posterior + 0.015 * cortex * posterior + 0.02 * anterior)).astype(np.float32)

    def _clavicles(self) -> np.ndarray:
        p = self.patient
        d = np.abs(self.u - p.axial_rotation)
        centre_v = p.apex + 0.05 - 0.38 * (d - 0.03) + 0.9 * (d - 0.03) * (d - 0.22)
        along = soft_step(d - 0.03, 2 * self.edge) * soft_step(0.31 - d, 3 * self.edge)
        return (0.09 * soft_step(0.015 - np.abs(self.v - centre_v), 1.5 * self.edge) * along).astype(np.float32)

    def _abdomen(self) -> None:
        p = self.patient
        below = np.maximum(
            soft_step(self.v - self.dome_level(RIGHT, self.u), 1.5 * self.edge) * (self.u < 0),
            soft_step(self.v - self.dome_level(LEFT, self.u), 1.5 * self.edge) * (self.u >= 0),
        )
        outer = p.lung_centre + p.lung_half_width
        self.abdomen = below * self.body * (1.0 - self.heart) * soft_step(outer - np.abs(self.u), 0.03)
        self.density += 0.06 * self.abdomen
        if p.gastric_bubble > 0:
            top = self.dome_level(LEFT, 0.13) + 0.012
            size = 0.045 * p.gastric_bubble
            bubble = ellipse(self.u, self.v, (0.13, top + 0.5 * size), (1.2 * size, 0.6 * size), 2 * self.edge)
            level = soft_step(top + 0.55 * size - self.v, self.edge)
            self.density -= 0.16 * bubble * level * self.abdomen

    # --- helpers for findings --------------------------------------------------------------------
    def zone(self, side: str, zone: str | None) -> np.ndarray:
        """Soft map of a lung zone on one side (the whole lung for None).

        Zones follow the PA projection: apex and upper lobe at the top, middle lobe / lingula
        next to the heart border, lower lobe and base above the diaphragm, the retrocardiac
        lung behind the heart (left), the costophrenic angle at the lateral base.
        """
        lung = self.lungs[side]
        if zone is None:
            return lung
        height = self.relative_height(side)
        lateral = self.relative_lateral(side)
        if zone == "apex":
            return lung * soft_step(0.2 - height, 0.04)
        if zone == "upper lobe":
            return lung * soft_step(height - 0.08, 0.03) * soft_step(0.45 - height, 0.04)
        if zone in ("middle lobe", "lingula"):
            return lung * soft_step(height - 0.45, 0.04) * soft_step(0.8 - height, 0.04) * soft_step(0.65 - lateral, 0.08)
        if zone == "lower lobe":
            return lung * soft_step(height - 0.55, 0.05)
        if zone == "base":
            return lung * soft_step(height - 0.75, 0.04)
        if zone == "costophrenic angle":
            return lung * soft_step(height - 0.8, 0.03) * soft_step(lateral - 0.6, 0.05)
        if zone == "hilum":
            hu, hv = self.hilum(side)
            return lung * np.exp(-((self.u - hu) ** 2 + (self.v - hv) ** 2) / 0.06**2)
        if zone == "paratracheal":
            mu = SIDE_SIGN[side] * (self.patient.mediastinum_half_width + 0.03)
            return lung * np.exp(-((self.u - mu) ** 2 + (self.v - 0.25) ** 2) / 0.05**2)
        if zone == "retrocardiac":
            return self.retrocardiac if side == LEFT else lung * soft_step(height - 0.6, 0.05) * soft_step(0.3 - lateral, 0.05)
        raise ValueError(f"unknown lung zone {zone!r}")

    def fill_air(self, amount: np.ndarray) -> None:
        """Replace a fraction `amount` (0..1) of the lung air by fluid or tissue."""
        self.density += np.clip(amount, 0.0, 1.0) * self.air

    def sample_point(self, weight: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
        """A random (u, v) drawn with probability proportional to `weight` (a zone of a lung)."""
        flat = np.clip(weight, 0, None).ravel().astype(np.float64)
        total = flat.sum()
        if total <= 0:
            index = int(rng.integers(flat.size))
        else:
            index = int(rng.choice(flat.size, p=flat / total))
        return float(self.u.ravel()[index]), float(self.v.ravel()[index])
