"""Soft shapes and smooth noise on a coordinate grid, the drawing primitives of the phantom.

Every shape is a float32 map in [0, 1] with an anti-aliased edge of a given width, evaluated
on whole coordinate arrays at once (no per-pixel loops). Coordinates are the patient frame of
:class:`reclf_monai.phantom.anatomy.Chest`: ``u`` across (negative = patient right = image left),
``v`` down, both in units of the image width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter, zoom


def soft_step(signed: np.ndarray, width: float) -> np.ndarray:
    """0 -> 1 across ``signed == 0`` over about `width`; positive `signed` is inside."""
    return (0.5 + 0.5 * np.tanh(signed / max(width, 1e-6))).astype(np.float32)


def ellipse(u, v, centre: Sequence[float], axes: Sequence[float], width: float, angle: float = 0.0) -> np.ndarray:
    """Soft filled ellipse; `angle` (radians) turns the first axis from +u towards +v."""
    du, dv = u - centre[0], v - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    a = (du * cos + dv * sin) / axes[0]
    b = (-du * sin + dv * cos) / axes[1]
    radius = np.sqrt(a * a + b * b)
    return soft_step((1.0 - radius) * min(axes), width)


def superellipse(u, v, centre: Sequence[float], axes: Sequence[float], exponent_top: float, exponent_bottom: float, width: float) -> np.ndarray:
    """Soft superellipse, rounder above its centre (lung apex) and squarer below (lung base)."""
    du = np.abs(u - centre[0]) / axes[0]
    dv_signed = (v - centre[1]) / axes[1]
    exponent = np.where(dv_signed < 0, exponent_top, exponent_bottom)
    radius = (du**exponent + np.abs(dv_signed) ** exponent) ** (1.0 / exponent)
    return soft_step((1.0 - radius) * min(axes), width)


def segment_distance(u, v, start: Sequence[float], end: Sequence[float]) -> np.ndarray:
    """Distance from every grid point to the segment start-end."""
    su, sv = end[0] - start[0], end[1] - start[1]
    length2 = max(su * su + sv * sv, 1e-12)
    t = np.clip(((u - start[0]) * su + (v - start[1]) * sv) / length2, 0.0, 1.0)
    return np.hypot(u - start[0] - t * su, v - start[1] - t * sv)


def polyline_distance(u, v, points: Sequence[Sequence[float]]) -> np.ndarray:
    """Distance from every grid point to a polyline through `points`."""
    distances = [segment_distance(u, v, a, b) for a, b in zip(points[:-1], points[1:])]
    return np.minimum.reduce(distances)


def polyline_band(u, v, points: Sequence[Sequence[float]], half_width: float, width: float) -> np.ndarray:
    """Soft band of `half_width` around a polyline (a catheter, a scar, a fissure)."""
    return soft_step(half_width - polyline_distance(u, v, points), width)


def smooth_curve(points: Sequence[Sequence[float]], samples: int = 16) -> np.ndarray:
    """A quadratic-spline-like curve through control points (Chaikin corner cutting)."""
    curve = np.asarray(points, dtype=np.float64)
    while len(curve) < samples:
        left, right = curve[:-1], curve[1:]
        cut = np.empty((2 * len(left), 2))
        cut[0::2] = 0.75 * left + 0.25 * right
        cut[1::2] = 0.25 * left + 0.75 * right
        curve = np.vstack([curve[:1], cut, curve[-1:]])
    return curve


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | Sequence[float]) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation; `sigma` in pixels.

    Large sigmas are filtered on a coarser grid and zoomed back (same look, a fraction of
    the cost), which keeps a 224 px image at a few milliseconds.
    """
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2,))
    factor = int(max(1, min(sigmas.min() // 3, 8)))
    coarse = (-(-shape[0] // factor), -(-shape[1] // factor))
    field = gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigmas / factor, mode="wrap")
    if factor > 1:
        field = zoom(field, factor, order=1, grid_mode=True, mode="grid-wrap")[: shape[0], : shape[1]]
    std = float(field.std())
    return (field / std if std > 0 else field).astype(np.float32)
