"""The IU-Phantom laterality set: single-sided findings whose class prompts differ only in the side.

"left pleural effusion" against "right pleural effusion" (and the same for opacity, nodule and
atelectasis): the images differ only in where the finding lies, and the prompts only in one word,
so a model scores above chance only if it relates the disease word to the location word, which is
what RECLF's semantic-relation module is for.

Items come from the test split of a built IU-Phantom (``datalist.json``): an image qualifies when
the drawn findings (its ``findings`` records) of exactly one of the four finding classes are
present and all lie on one side; other findings (e.g. cardiomegaly, devices) may be present too.
The class's findings include the types drawn alike (see
:data:`~reclf_monai.phantom.zero_shot_classes.CLASS_OF_FINDING`: consolidation is an opacity, a
blunted costophrenic angle an effusion, a calcified granuloma a nodule). Each finding class keeps
as many left as right images (a seeded draw from the larger side), so within a finding the side is
a fair coin; a finding without an image on either side is left out, classes and all.

Sides follow the reports and the renderer: the **patient's** side (radiological convention: the
patient's right lies on the image's left).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.datalist import write_datalist
from ..data.errors import DataError
from .zero_shot_classes import CLASS_OF_FINDING

LATERAL_FINDINGS = ("Pleural Effusion", "Opacity", "Nodule", "Atelectasis")
SIDES = ("left", "right")
LATERALITY_FILE = "zeroshot_laterality.json"
LATERALITY_PROMPTS_FILE = "prompts_laterality.json"

# Every prompt names the side once, as the word {side}; nothing else tells a pair apart. No lobe or
# zone words: an opacity or nodule may be drawn in any zone of its lung.
PROMPT_TEMPLATES = {
    "Pleural Effusion": ("{side} pleural effusion", "small {side} pleural effusion", "blunting of the {side} costophrenic angle"),
    "Opacity": ("{side} lung opacity", "airspace disease in the {side} lung", "consolidation in the {side} lung"),
    "Nodule": ("{side} lung nodule", "nodular opacity in the {side} lung", "calcified granuloma in the {side} lung"),
    "Atelectasis": ("{side} basilar atelectasis", "atelectasis at the {side} lung base", "{side} lung atelectasis"),
}


def laterality_class(finding: str, side: str) -> str:
    """The class name of a finding on one side, e.g. ``left pleural effusion``."""
    return f"{side} {finding.lower()}"


def laterality_prompts() -> dict[str, list[str]]:
    """``{class name: prompts}`` for all eight classes, left before right for each finding."""
    return {
        laterality_class(finding, side): [template.format(side=side) for template in PROMPT_TEMPLATES[finding]]
        for finding in LATERAL_FINDINGS
        for side in SIDES
    }


def single_sided_finding(findings: Iterable[Mapping]) -> Optional[tuple[str, str]]:
    """(finding class, side) when the drawn findings of exactly one of :data:`LATERAL_FINDINGS`
    are present and all lie on one side; else None."""
    sides: dict[str, set] = {}
    for record in findings:
        finding = CLASS_OF_FINDING.get(record["type"])
        if finding in LATERAL_FINDINGS:
            sides.setdefault(finding, set()).add(record.get("side"))
    if len(sides) != 1:
        return None
    [(finding, found)] = sides.items()
    if len(found) != 1 or next(iter(found)) not in SIDES:
        return None
    return finding, next(iter(found))


def laterality_items(test_items: Sequence[Mapping], seed: int = 0) -> tuple[list[dict], list[str]]:
    """The balanced laterality items (``target`` = index into the returned class names) and the
    class names of the findings kept (left and right of each)."""
    groups: dict[tuple[str, str], list[Mapping]] = {(finding, side): [] for finding in LATERAL_FINDINGS for side in SIDES}
    for item in test_items:
        found = single_sided_finding(item["findings"])
        if found is not None:
            groups[found].append(item)
    rng = np.random.default_rng(seed)
    chosen, class_names = [], []
    for finding in LATERAL_FINDINGS:
        per_side = min(len(groups[finding, side]) for side in SIDES)
        if per_side == 0:
            continue
        for side in SIDES:
            name = laterality_class(finding, side)
            items = sorted(groups[finding, side], key=lambda item: item["uid"])
            for position in sorted(rng.permutation(len(items))[:per_side]):
                item = items[position]
                chosen.append(
                    {"image": item["image"], "report": item["report"], "target": len(class_names), "class_name": name,
                     "finding": finding, "side": side, "uid": item["uid"]}  # fmt: skip
                )
            class_names.append(name)
    return chosen, class_names


def write_laterality_set(dataset_dir: str | os.PathLike, output_dir: Optional[str | os.PathLike] = None, seed: int = 0) -> dict[str, int]:
    """Write ``zeroshot_laterality.json`` (split ``test``, ``class_names``) and
    ``prompts_laterality.json`` into `output_dir` (default: the corpus folder) from the test split
    of the IU-Phantom ``datalist.json`` in `dataset_dir`; returns the number of images per class.

    Image paths are written relative to `output_dir`, so the set may live beside the corpus or elsewhere.
    """
    dataset_dir = Path(dataset_dir)
    output_dir = dataset_dir if output_dir is None else Path(output_dir)
    datalist = dataset_dir / "datalist.json"
    if not datalist.is_file():
        raise DataError(datalist, "datalist file not found (build IU-Phantom first: scripts/prepare_demo_data.py)")
    test_items = json.loads(datalist.read_text()).get("test", [])
    unrecorded = [index for index, item in enumerate(test_items) if "findings" not in item or "uid" not in item]
    if unrecorded:
        raise DataError(datalist, f"test items {unrecorded[:5]} have no 'findings' records: not an IU-Phantom datalist")
    items, class_names = laterality_items(test_items, seed)
    for item in items:
        item["image"] = os.path.relpath(os.path.abspath(dataset_dir / item["image"]), os.path.abspath(output_dir))
    note = (
        "IU-Phantom laterality set: real IU reports (CC BY-NC-ND 4.0, do not redistribute) with SYNTHETIC images; "
        "sides are the patient's (radiological convention: the patient's right is on the image's left)"
    )
    write_datalist(output_dir / LATERALITY_FILE, {"test": items}, description=note, class_names=class_names, seed=seed)
    (output_dir / LATERALITY_PROMPTS_FILE).write_text(json.dumps(laterality_prompts(), indent=1))
    return {name: sum(item["class_name"] == name for item in items) for name in class_names}
