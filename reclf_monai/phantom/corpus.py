"""Build the IU-Phantom corpus: real IU reports paired with synthetic radiographs.

For every IU report with FINDINGS or IMPRESSION text, a frontal radiograph is rendered from
the report's MeSH major terms (see :mod:`reclf_monai.phantom.radiograph`) and written as PNG
with a PNG mask of the drawn findings. The reports are read at run time from the installed
torchxrayvision wheel (licence CC BY-NC-ND 4.0); nothing derived from them is shipped.

Outputs in the output folder: ``datalist.json`` (training / validation / test, split by
report), ``images/``, ``masks/``, ``zeroshot_5xN.json`` (balanced test images with exactly one
of the five classes), ``prompts.json``, and the laterality set ``zeroshot_laterality.json`` with
``prompts_laterality.json`` (:mod:`reclf_monai.phantom.laterality`), and the relation probe
``relation_probe.json`` with its images in ``probe/`` (:mod:`reclf_monai.phantom.relation_probe`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.datalist import SPLITS, split_by_group, write_datalist
from ..data.iu_reports import IUReport, iter_iu_reports
from ..data.preparation.reporting import progress
from ..data.report_text import compose_report
from .laterality import write_laterality_set
from .mesh_findings import resolve_findings
from .radiograph import case_rng, render_case
from .relation_probe import write_relation_probe
from .zero_shot_classes import PROMPTS, ZERO_SHOT_CLASSES, class_target, single_class

DEFAULT_FRACTIONS = {"training": 0.7, "validation": 0.1, "test": 0.2}
# The test split takes at least this many single-class reports per class (if there are
# enough), so that the zero-shot file has >= 30 images per class; pleural effusion, the
# scarcest class, decides it.
MIN_TEST_PER_CLASS = 34
MAX_TEST_SHARE = 0.67
ZERO_SHOT_FILE = "zeroshot_5xN.json"
PROMPTS_FILE = "prompts.json"
RENDERING = "rendering IU-Phantom"  # the progress bar's label
OTHER_STRATUM = "other"


@dataclass
class CorpusSummary:
    """What was built: counts for the printed summary and for tests."""

    split_counts: dict[str, int]
    dropped_reports: int
    zero_shot_per_class: int
    zero_shot_counts: dict[str, int]
    single_class_test_counts: dict[str, int]
    rendered_types: Counter = field(default_factory=Counter)
    ignored_terms: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = ["IU-Phantom corpus (real IU reports, SYNTHETIC images)"]
        out.append("  split sizes: " + ", ".join(f"{k} {v}" for k, v in self.split_counts.items()))
        out.append(f"  dropped reports without FINDINGS/IMPRESSION text: {self.dropped_reports}")
        out.append(
            f"  zero-shot test ({self.zero_shot_per_class} per class; single-class test reports available): "
            + ", ".join(f"{k} {self.zero_shot_counts.get(k, 0)} ({self.single_class_test_counts.get(k, 0)})" for k in ZERO_SHOT_CLASSES)
        )
        out.append("  finding types rendered (reports): " + ", ".join(f"{k} {v}" for k, v in self.rendered_types.most_common()))
        out.append("  MeSH descriptors without a renderer, ignored (terms): " + ", ".join(f"{k} {v}" for k, v in self.ignored_terms.most_common()))
        out.append(f"  time: {self.seconds:.1f} s")
        return out


def stratified_split(
    strata: Mapping[str, str],
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    min_test: Mapping[str, int] | None = None,
    max_test_share: float = MAX_TEST_SHARE,
) -> dict[str, str]:
    """Split report ids by stratum (uid -> stratum name), each stratum in the same proportions.

    `min_test` raises the test count of named strata (scarce classes) up to that many, but never
    above `max_test_share` of the stratum. Returns uid -> split name.
    """
    min_test = dict(min_test or {})
    groups: dict[str, list[str]] = {}
    for uid, stratum in strata.items():
        groups.setdefault(stratum, []).append(uid)
    total = sum(fractions.values())
    assignment: dict[str, str] = {}
    for stratum in sorted(groups):
        uids = groups[stratum]
        n = len(uids)
        n_test = round(n * fractions["test"] / total)
        n_test = max(n_test, min(min_test.get(stratum, 0), int(n * max_test_share)))
        rest = n - n_test
        n_validation = round(rest * fractions["validation"] / (fractions["training"] + fractions["validation"]))
        counts = {"training": rest - n_validation, "validation": n_validation, "test": n_test}
        assignment.update(split_by_group(uids, counts, seed))
    return assignment


def _render_and_write(task: tuple[str, tuple[str, ...]], output_dir: str, image_size: int, seed: int) -> tuple[str, list[dict], list[str]]:
    uid, mesh = task
    case = render_case(mesh, image_size, case_rng(seed, uid))
    Image.fromarray(case.image).save(Path(output_dir, "images", f"{uid}.png"), format="PNG")
    Image.fromarray(case.mask).save(Path(output_dir, "masks", f"{uid}.png"), format="PNG")
    return uid, case.findings, case.types


def _render_all(tasks: Sequence[tuple[str, tuple[str, ...]]], output_dir: Path, image_size: int, seed: int, workers: int):
    """Render and write every report's image, in order, with a progress bar on stderr (minutes for the full corpus)."""
    job = partial(_render_and_write, output_dir=str(output_dir), image_size=image_size, seed=seed)
    if workers <= 1:
        return [job(task) for task in progress(tasks, RENDERING, len(tasks))]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(progress(pool.imap(job, tasks, chunksize=16), RENDERING, len(tasks)))


def _zero_shot_items(test_items: Sequence[dict], seed: int) -> tuple[list[dict], int, dict[str, int]]:
    """Balanced test items with exactly one class: N per class, N = the scarcest class's count."""
    by_class: dict[str, list[dict]] = {name: [] for name in ZERO_SHOT_CLASSES}
    for item in test_items:
        name = single_class(item["classes"])
        if name is not None:
            by_class[name].append(item)
    available = {name: len(items) for name, items in by_class.items()}
    nonempty = [count for count in available.values() if count]
    per_class = min(nonempty) if nonempty else 0
    rng = np.random.default_rng(seed)
    chosen = []
    for index, name in enumerate(ZERO_SHOT_CLASSES):
        items = sorted(by_class[name], key=lambda item: item["uid"])
        for position in sorted(rng.permutation(len(items))[:per_class]):
            item = items[position]
            chosen.append({"image": item["image"], "report": item["report"], "target": index, "class_name": name, "uid": item["uid"]})
    return chosen, per_class, available


def build_corpus(
    output_dir: str | os.PathLike,
    image_size: int = 224,
    seed: int = 0,
    limit: int | None = None,
    workers: int = 2,
    reports: Iterable[IUReport] | None = None,
) -> CorpusSummary:
    """Render IU-Phantom into `output_dir` and write its datalists; returns the summary.

    `reports` defaults to the IU reports of the installed torchxrayvision; `limit` keeps the
    first N reports (by uid order). An image depends only on (seed, uid, image_size).
    """
    start = time.perf_counter()
    output_dir = Path(output_dir)
    (output_dir / "images").mkdir(parents=True, exist_ok=True)
    (output_dir / "masks").mkdir(parents=True, exist_ok=True)
    reports = reports if reports is not None else iter_iu_reports()
    kept: list[tuple[IUReport, str, list[str]]] = []
    dropped = 0
    ignored_terms: Counter = Counter()
    for index, report in enumerate(reports):
        if limit is not None and index >= limit:
            break
        text = compose_report(report.findings, report.impression)
        if not text:
            dropped += 1
            continue
        specs, ignored = resolve_findings(report.mesh_major)
        ignored_terms.update(ignored)
        kept.append((report, text, list(dict.fromkeys(spec.type for spec in specs))))

    strata = {report.uid: single_class(types) or OTHER_STRATUM for report, _, types in kept}
    split_of = stratified_split(strata, seed=seed, min_test={name: MIN_TEST_PER_CLASS for name in ZERO_SHOT_CLASSES})
    rendered = _render_all([(report.uid, report.mesh_major) for report, _, _ in kept], output_dir, image_size, seed, workers)

    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    rendered_types: Counter = Counter()
    for (report, text, _), (uid, findings, types) in zip(kept, rendered):
        rendered_types.update(types)
        splits[split_of[uid]].append(
            {
                "uid": uid,
                "image": f"images/{uid}.png",
                "label": f"masks/{uid}.png",
                "report": text,
                "classes": types,
                "findings": findings,
                "target": class_target(types),
                "mesh": list(report.mesh_major),
            }
        )
    note = "IU-Phantom: real IU reports (CC BY-NC-ND 4.0, do not redistribute) with SYNTHETIC images"
    write_datalist(output_dir / "datalist.json", splits, description=note, class_names=list(ZERO_SHOT_CLASSES), image_size=image_size, seed=seed)
    zero_shot, per_class, available = _zero_shot_items(splits["test"], seed)
    write_datalist(output_dir / ZERO_SHOT_FILE, {"test": zero_shot}, description=note, class_names=list(ZERO_SHOT_CLASSES))
    (output_dir / PROMPTS_FILE).write_text(json.dumps(PROMPTS, indent=1))
    write_laterality_set(output_dir, seed=seed)
    write_relation_probe(output_dir, image_size, seed=seed)
    return CorpusSummary(
        split_counts={name: len(items) for name, items in splits.items()},
        dropped_reports=dropped,
        zero_shot_per_class=per_class,
        zero_shot_counts=Counter(item["class_name"] for item in zero_shot),
        single_class_test_counts=available,
        rendered_types=rendered_types,
        ignored_terms=ignored_terms,
        seconds=time.perf_counter() - start,
    )
