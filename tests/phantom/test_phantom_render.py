"""IU-Phantom rendering: anatomy, side convention, each finding's effect, masks, determinism."""

import numpy as np
import pytest

from reclf_monai.phantom.anatomy import LEFT, RIGHT, Chest, sample_patient
from reclf_monai.phantom.finding_renderers import RENDERERS, place_finding
from reclf_monai.phantom.mesh_findings import resolve_findings
from reclf_monai.phantom.radiograph import case_rng, expose, render_case

SIZE = 96

# A representative MeSH term for every drawn finding type, and the expected sign of the density
# change inside the finding's region (+1 denser / brighter, -1 more lucent / darker).
DRAWN = {
    "Opacity": ("Opacity/lung/upper lobe/right", 1),
    "Consolidation": ("Consolidation/lung/lower lobe/left", 1),
    "Atelectasis": ("Pulmonary Atelectasis/base/left", 1),
    "Pleural Effusion": ("Pleural Effusion/right/moderate", 1),
    "Blunted Costophrenic Angle": ("Costophrenic Angle/left/blunted", 1),
    "Nodule": ("Nodule/lung/lower lobe/right", 1),
    "Calcified Granuloma": ("Calcified Granuloma/lung/upper lobe/left", 1),
    "Mass": ("Mass/lung/upper lobe/right/large", 1),
    "Calcified Lymph Node": ("Calcinosis/lung/hilum/lymph nodes/right", 1),
    "Pneumothorax": ("Pneumothorax/right/moderate", -1),
    "Pulmonary Edema": ("Pulmonary Edema", 1),
    "Pulmonary Congestion": ("Pulmonary Congestion", 1),
    "Hilar Enlargement": ("Pulmonary Artery/enlarged", 1),
    "Scar": ("Cicatrix/lung/apex/right", 1),
    "Pleural Thickening": ("Thickening/pleura/apex/left", 1),
    "Bulla": ("Bullous Emphysema", -1),
    "Cavity": ("Cavitation", 1),
    "Tortuous Aorta": ("Aorta/tortuous", 1),
    "Aortic Calcification": ("Calcinosis/aorta", 1),
    "Hiatal Hernia": ("Hernia, Hiatal/large", -1),
    "Spinal Degeneration": ("Thoracic Vertebrae/degenerative", 1),
    "Spinal Fusion Hardware": ("Spinal Fusion/thoracic vertebrae", 1),
    "Rib Fracture": ("Fractures, Bone/ribs/left/healed", 1),
    "Clavicle Fracture": ("Fractures, Bone/clavicle/right/healed", 1),
    "Central Venous Catheter": ("Catheters, Indwelling/right", 1),
    "Pacemaker": ("Implanted Medical Device/left", 1),
    "Valve Prosthesis": ("Implanted Medical Device/aortic valve", 1),
    "Sternotomy Wires": ("Surgical Instruments/mediastinum", 1),
    "Surgical Clips": ("Surgical Instruments/abdomen/right", 1),
    "Tube": ("Tube, Inserted/trachea", 1),
    "Stent": ("Stents/coronary vessels", 1),
    "Foreign Body": ("Foreign Bodies/thorax/left", 1),
    "Subcutaneous Emphysema": ("Subcutaneous Emphysema", -1),
    "Pneumoperitoneum": ("Pneumoperitoneum", -1),
    "Nipple Shadow": ("Nipple Shadow", 1),
    "Azygos Fissure": ("Lung/azygos lobe", 1),
}
# Findings that change the anatomy itself (their region marks it, the density is the anatomy's).
ANATOMICAL = {
    "Cardiomegaly": "Cardiomegaly/moderate",
    "Pericardial Effusion": "Pericardial Effusion",
    "Elevated Diaphragm": "Diaphragm/right/elevated",
    "Mediastinal Widening": "Mediastinum/prominent",
}
# Diffuse findings: no region.
DIFFUSE = {
    "Hyperinflation": "Lung/hyperdistention",
    "Emphysema": "Emphysema",
    "Hypoinflation": "Lung/hypoinflation",
    "Bronchovascular Markings": "Markings/bronchovascular",
    "Scoliosis": "Scoliosis/thoracic vertebrae/right",
    "Osteopenia": "Bone Diseases, Metabolic",
    "Suboptimal Technique": "Technical Quality of Image Unsatisfactory",
    "Interstitial Markings": "Markings/lung/interstitial",
}


def _chest(terms, size=SIZE, rng=None):
    """Chest with the findings' anatomy adjustments applied, plus their placements."""
    rng = rng or np.random.default_rng(0)
    specs, _ = resolve_findings(terms)
    patient = sample_patient(rng)
    placements = [p for spec in specs for p in place_finding(spec, rng)]
    for placement in placements:
        if RENDERERS[placement.type].adjust:
            RENDERERS[placement.type].adjust(patient, placement, rng)
    return Chest(patient, size, rng), placements, rng


def _centroid_column(mask):
    return np.nonzero(mask)[1].mean()


def test_every_renderer_is_covered():
    assert set(RENDERERS) == set(DRAWN) | set(ANATOMICAL) | set(DIFFUSE)


def test_anatomy_side_convention():
    chest, _, _ = _chest([])
    assert _centroid_column(chest.lungs[RIGHT] > 0.5) < SIZE / 2 < _centroid_column(chest.lungs[LEFT] > 0.5)
    # The heart bulges to the patient's left (image right); the aortic knob is on the left.
    assert _centroid_column(chest.heart > 0.5) > SIZE / 2
    assert chest.knob_centre[0] > 0


def test_normal_chest_is_a_plausible_radiograph():
    case = render_case(["normal"], SIZE, case_rng(0, "CXR1"))
    assert case.findings == [] and case.types == [] and case.mask.max() == 0
    chest, _, _ = _chest([], rng=case_rng(0, "CXR1"))
    lungs = (chest.lungs[RIGHT] + chest.lungs[LEFT]) > 0.5
    heart = chest.heart > 0.5
    outside = chest.body < 0.1
    image = case.image.astype(float)
    # Lungs dark, heart and mediastinum bright, air outside the body darkest (same patient draw
    # as render_case's for a normal report, so the maps line up).
    assert image[outside].mean() < image[lungs].mean() < image[heart].mean()


@pytest.mark.parametrize("type_name", sorted(DRAWN))
def test_renderer_changes_density_inside_its_region(type_name):
    term, sign = DRAWN[type_name]
    chest, placements, rng = _chest([term])
    assert placements and {p.type for p in placements} == {type_name}
    for placement in placements:
        before = chest.density.copy()
        region = RENDERERS[type_name].draw(chest, placement, rng)
        inside = region > 0.5
        assert inside.any(), f"{type_name}: empty region"
        change = (chest.density - before)[inside].mean()
        assert np.sign(change) == sign, f"{type_name}: mean density change {change:.4f}"
        assert abs(change) > 1e-3


def test_opacity_does_not_leak_outside_the_lungs():
    chest, (placement,), rng = _chest(["Opacity/lung/lower lobe/right/severe"])
    before = chest.density.copy()
    RENDERERS["Opacity"].draw(chest, placement, rng)
    outside_lungs = (chest.lungs[RIGHT] + chest.lungs[LEFT] + chest.retrocardiac) < 0.01
    assert np.abs(chest.density - before)[outside_lungs].max() < 5e-3  # vs ~0.1 inside


def _heart_width(chest):
    columns = np.nonzero((chest.heart > 0.5).any(axis=0))[0]
    return columns[-1] - columns[0]


def _lung_area(chest, side=None):
    sides = [side] if side else [RIGHT, LEFT]
    return sum((chest.lungs[s] > 0.5).sum() for s in sides)


def test_anatomical_findings_change_the_anatomy():
    normal, _, _ = _chest([], size=128)
    assert _heart_width(_chest(["Cardiomegaly/severe"], size=128)[0]) > 1.25 * _heart_width(normal)
    assert _heart_width(_chest(["Cardiomegaly/borderline"], size=128)[0]) < _heart_width(_chest(["Cardiomegaly/severe"], size=128)[0])
    elevated, (placement,), rng = _chest(["Diaphragm/right/elevated"], size=128)
    assert _lung_area(elevated, RIGHT) < 0.9 * _lung_area(normal, RIGHT)
    assert _lung_area(elevated, LEFT) == pytest.approx(_lung_area(normal, LEFT), rel=0.02)
    assert (RENDERERS["Elevated Diaphragm"].draw(elevated, placement, rng) > 0.5).sum() > 0
    widened, (placement,), rng = _chest(["Mediastinum/prominent"], size=128)
    assert (RENDERERS["Mediastinal Widening"].draw(widened, placement, rng) > 0.5).sum() > 0
    assert _lung_area(widened) < _lung_area(normal)


def test_diffuse_findings_change_the_whole_chest():
    normal, _, _ = _chest([], size=128)
    assert _lung_area(_chest(["Lung/hyperdistention"], size=128)[0]) > 1.1 * _lung_area(normal)
    assert _lung_area(_chest(["Lung/hypoinflation"], size=128)[0]) < 0.9 * _lung_area(normal)
    emphysema, _, _ = _chest(["Emphysema"], size=128)
    lungs = (normal.lungs[RIGHT] > 0.5) & (emphysema.lungs[RIGHT] > 0.5)
    assert emphysema.density[lungs].mean() < normal.density[lungs].mean()
    osteopenia, _, _ = _chest(["Osteoporosis"], size=128)
    ribs = normal.ribs > 0.5 * normal.ribs.max()
    assert (normal.density - osteopenia.density)[ribs].min() > 0.005
    scoliosis, _, _ = _chest(["Scoliosis/right/moderate"], size=128)
    assert scoliosis.spine_offset(0.5) < -0.01 and normal.spine_offset(0.5) == 0  # convex to the patient's right
    interstitial, (placement,), rng = _chest(["Markings/lung/interstitial"], size=128)
    before = interstitial.density.copy()
    assert RENDERERS["Interstitial Markings"].draw(interstitial, placement, rng) is None
    assert interstitial.density[lungs].mean() > before[lungs].mean()
    for term in DIFFUSE.values():
        case = render_case([term], SIZE, case_rng(0, "x"))
        assert case.findings and all(f["bbox"] is None for f in case.findings)
        assert case.mask.max() == 0


def test_exposure_is_monotonic_in_density():
    chest, _, _ = _chest([])
    chest.patient.noise = 0.0
    base = expose(chest, np.random.default_rng(0)).astype(int)
    chest.density[40:50, 20:30] += 0.1
    brighter = expose(chest, np.random.default_rng(0)).astype(int)
    assert (brighter[42:48, 22:28] >= base[42:48, 22:28]).all()
    assert (brighter[42:48, 22:28] > base[42:48, 22:28]).mean() > 0.9


@pytest.mark.parametrize(
    "term, image_side",
    [
        ("Opacity/lung/upper lobe/right", "left"),
        ("Opacity/lung/upper lobe/left", "right"),
        ("Pleural Effusion/right/small", "left"),
        ("Pleural Effusion/left/small", "right"),
        ("Pneumothorax/left", "right"),
        ("Pulmonary Atelectasis/base/right", "left"),
        ("Nodule/lung/lingula", "right"),
        ("Calcified Granuloma/lung/middle lobe/right", "left"),
    ],
)
def test_side_convention_patient_right_is_image_left(term, image_side):
    for uid in ("a", "b", "c"):
        case = render_case([term], SIZE, case_rng(0, uid))
        column = _centroid_column(case.mask > 0)
        assert (column < SIZE / 2) == (image_side == "left"), f"{term}: mask centroid column {column:.1f}"
        side = case.findings[0]["side"]
        assert side == ("right" if image_side == "left" else "left")


def test_bilateral_finding_is_recorded_per_side_with_boxes_inside_the_mask():
    case = render_case(["Pleural Effusion/bilateral/moderate", "Cardiomegaly/mild"], SIZE, case_rng(0, "CXR9"))
    assert [(f["type"], f["side"]) for f in case.findings] == [
        ("Pleural Effusion", "right"),
        ("Pleural Effusion", "left"),
        ("Cardiomegaly", None),
    ]
    assert case.types == ["Pleural Effusion", "Cardiomegaly"]
    for finding in case.findings:
        x0, y0, x1, y1 = finding["bbox"]
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
        box = case.mask[y0:y1, x0:x1]
        assert box.max() == 255 and box[0].max() == 255 and box[-1].max() == 255
    assert set(np.unique(case.mask)) == {0, 255}
    assert case.image.shape == case.mask.shape == (SIZE, SIZE) and case.image.dtype == np.uint8


def test_rendering_is_deterministic_per_seed_and_uid():
    terms = ["Opacity/lung/base/left", "Cardiomegaly/mild", "Calcified Granuloma/multiple"]
    first = render_case(terms, SIZE, case_rng(0, "CXR7"))
    again = render_case(terms, SIZE, case_rng(0, "CXR7"))
    assert np.array_equal(first.image, again.image) and np.array_equal(first.mask, again.mask)
    assert first.findings == again.findings
    other_seed = render_case(terms, SIZE, case_rng(1, "CXR7"))
    other_uid = render_case(terms, SIZE, case_rng(0, "CXR8"))
    assert not np.array_equal(first.image, other_seed.image)
    assert not np.array_equal(first.image, other_uid.image)
