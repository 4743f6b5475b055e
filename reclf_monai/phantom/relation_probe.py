"""The IU-Phantom relation probe: can a model tell a report from minimal edits of it?

A model that pools its word-region matchings as a bag scores "left pleural effusion. right lung
nodule." and "right pleural effusion. left lung nodule." alike: the same words match the same
regions, only the pairing of disease and side differs. That pairing is what RECLF's
semantic-relation module is for, so this set probes it.

Each case is drawn from the findings, not picked by hand: one or two of the laterality set's
finding classes (:data:`~reclf_monai.phantom.laterality.LATERAL_FINDINGS`), two of different
classes on opposite sides. Every case is rendered twice from one random generator: as written,
and with every side swapped (the swapped image). Its texts, from the laterality prompts:

- ``report``: the findings, e.g. ``left pleural effusion. right lung nodule.``;
- ``sides swapped``: every side word exchanged (the report of the swapped image);
- ``negated``: one finding negated, e.g. ``no left pleural effusion. right lung nodule.`` (one
  edit per finding).

Scores (:class:`~reclf_monai.metrics.RelationProbeMetric`): per edit, the share of images whose
report scores above the edit (image to text), and the share of reports whose image scores above
the swapped image (text to image). Chance is 0.5.

Output: ``relation_probe.json`` (split ``test``: each image with ``label`` [case, variant], variant
0 as written, 1 swapped; ``cases``: the texts and findings) and the PNGs under ``probe/``.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.datalist import write_datalist
from .laterality import LATERAL_FINDINGS, PROMPT_TEMPLATES, SIDES
from .radiograph import case_rng, render_case

PROBE_FILE = "relation_probe.json"
PROBE_FOLDER = "probe"
EDITS = ("sides swapped", "negated")
# A MeSH term per finding class that the renderer draws on the side written into it.
MESH_TERMS = {
    "Pleural Effusion": "Pleural Effusion/{side}",
    "Opacity": "Opacity/lung/base/{side}",
    "Nodule": "Nodule/lung/{side}",
    "Atelectasis": "Pulmonary Atelectasis/base/{side}",
}
OTHER_SIDE = {"left": "right", "right": "left"}


def finding_phrase(finding: str, side: str) -> str:
    """The laterality set's first prompt of a finding on a side, e.g. ``left pleural effusion``."""
    return PROMPT_TEMPLATES[finding][0].format(side=side)


def probe_texts(findings: list[tuple[str, str]]) -> dict[str, object]:
    """The report of (finding, side) pairs and its edits (see the module docstring)."""
    phrases = [finding_phrase(finding, side) for finding, side in findings]
    swapped = [finding_phrase(finding, OTHER_SIDE[side]) for finding, side in findings]
    negated = [". ".join(f"no {phrase}" if index == which else phrase for index, phrase in enumerate(phrases)) + "." for which in range(len(phrases))]
    return {"report": ". ".join(phrases) + ".", "sides swapped": ". ".join(swapped) + ".", "negated": negated}


def probe_findings(cases_per_layout: int, seed: int) -> list[list[tuple[str, str]]]:
    """Every layout of the probe, `cases_per_layout` times: each finding class alone on each side,
    and each pair of classes on opposite sides (both ways round); shuffled by `seed`."""
    layouts = [[(finding, side)] for finding in LATERAL_FINDINGS for side in SIDES]
    for first, second in itertools.combinations(LATERAL_FINDINGS, 2):
        layouts += [[(first, side), (second, OTHER_SIDE[side])] for side in SIDES]
    cases = [layout for layout in layouts for _ in range(cases_per_layout)]
    order = np.random.default_rng(seed).permutation(len(cases))
    return [cases[index] for index in order]


def write_relation_probe(dataset_dir: str | os.PathLike, image_size: int, seed: int = 0, cases_per_layout: int = 6) -> int:
    """Render the probe into `dataset_dir` (``relation_probe.json``, ``probe/``); returns the
    number of cases. Images depend only on (seed, case), like IU-Phantom's."""
    dataset_dir = Path(dataset_dir)
    (dataset_dir / PROBE_FOLDER).mkdir(parents=True, exist_ok=True)
    items, cases = [], []
    for case, findings in enumerate(probe_findings(cases_per_layout, seed)):
        for variant, layout in enumerate((findings, [(finding, OTHER_SIDE[side]) for finding, side in findings])):
            terms = [MESH_TERMS[finding].format(side=side) for finding, side in layout]
            rendered = render_case(terms, image_size, case_rng(seed, f"relation-probe-{case}"))
            drawn = sorted((record["type"], record["side"]) for record in rendered.findings)
            if drawn != sorted(layout):
                raise RuntimeError(f"relation probe case {case}: asked for {sorted(layout)}, the renderer drew {drawn}")
            name = f"{PROBE_FOLDER}/case{case:04d}_{'swapped' if variant else 'report'}.png"
            Image.fromarray(rendered.image).save(dataset_dir / name)
            items.append({"image": name, "label": [case, variant]})
        cases.append({"case": case, "findings": [list(finding) for finding in findings], **probe_texts(findings)})
    note = (
        "IU-Phantom relation probe: SYNTHETIC images rendered from drawn findings; sides are the patient's. Each case "
        "twice, label [case, variant] (variant 0 as reported, 1 with every side swapped); texts per case under 'cases'"
    )
    write_datalist(dataset_dir / PROBE_FILE, {"test": items}, description=note, cases=cases, seed=seed, image_size=image_size)
    return len(cases)


def read_probe_cases(path: str | os.PathLike) -> list[dict]:
    """The ``cases`` of a probe file, indexed by case number."""
    cases = json.loads(Path(path).read_text())["cases"]
    return sorted(cases, key=lambda case: case["case"])
