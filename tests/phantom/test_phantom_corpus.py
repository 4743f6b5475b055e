"""IU-Phantom corpus: datalists, split by report, zero-shot file, determinism, CLI, contact sheet."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repository import ROOT

from reclf_monai.data.datalist import SPLITS, load_datalist
from reclf_monai.data.iu_reports import IUReport
from reclf_monai.phantom.contact_sheet import make_contact_sheet
from reclf_monai.phantom.corpus import PROMPTS_FILE, ZERO_SHOT_FILE, build_corpus, stratified_split
from reclf_monai.phantom.zero_shot_classes import CLASS_OF_FINDING, ZERO_SHOT_CLASSES

SIZE = 64
CLASS_TERMS = {
    "Atelectasis": "Pulmonary Atelectasis/base/left",
    "Cardiomegaly": "Cardiomegaly/mild",
    "Opacity": "Airspace Disease/lung/base/right",
    "Pleural Effusion": "Pleural Effusion/bilateral/small",
    "Nodule": "Calcified Granuloma/lung/upper lobe/right",
}


def _fake_reports(per_class=10):
    """Reports with known MeSH terms: `per_class` single-class reports per class, a few with two
    classes, normals, and one without text (dropped)."""
    reports = []
    for name, term in CLASS_TERMS.items():
        for i in range(per_class):
            reports.append(IUReport(uid=f"{name[:3]}{i}", findings=f"Finding {i}.", impression=f"{name}.", mesh_major=(term,)))
    for i in range(6):
        terms = (CLASS_TERMS["Atelectasis"], CLASS_TERMS["Cardiomegaly"])
        reports.append(IUReport(uid=f"Two{i}", findings="Two findings.", impression="", mesh_major=terms))
        reports.append(IUReport(uid=f"Nor{i}", findings="", impression="Normal chest.", mesh_major=("normal",)))
    reports.append(IUReport(uid="Empty", findings="", impression=" XXXX. ", mesh_major=("normal",)))
    return reports


@pytest.fixture(scope="module")
def fake_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    summary = build_corpus(folder, image_size=SIZE, seed=0, workers=1, reports=_fake_reports())
    return folder, summary


def test_datalist_loads_with_monai_and_items_are_complete(fake_corpus):
    folder, summary = fake_corpus
    content = json.loads((folder / "datalist.json").read_text())
    assert content["class_names"] == list(ZERO_SHOT_CLASSES)
    assert summary.dropped_reports == 1
    assert sum(summary.split_counts.values()) == 5 * 10 + 12
    for split in SPLITS:
        items = load_datalist(folder / "datalist.json", split)
        assert len(items) == summary.split_counts[split] > 0
        for item in items:
            assert Path(item["image"]).is_file() and Path(item["label"]).is_file()
            assert set(item) >= {"uid", "image", "label", "report", "classes", "findings", "target"}
            assert item["report"] and len(item["target"]) == 5
            image = np.asarray(Image.open(item["image"]))
            mask = np.asarray(Image.open(item["label"]))
            assert image.shape == mask.shape == (SIZE, SIZE) and image.dtype == np.uint8
            assert (mask.max() > 0) == any(f["bbox"] for f in item["findings"])
            for name, value in zip(ZERO_SHOT_CLASSES, item["target"]):
                assert value == (1.0 if name in {CLASS_OF_FINDING.get(t) for t in item["classes"]} else 0.0)


def test_split_is_by_report(fake_corpus):
    folder, _ = fake_corpus
    content = json.loads((folder / "datalist.json").read_text())
    uids = [item["uid"] for split in SPLITS for item in content[split]]
    assert len(uids) == len(set(uids))
    images = [item["image"] for split in SPLITS for item in content[split]]
    assert len(images) == len(set(images))


def test_zero_shot_file_has_exactly_one_class_per_item_and_is_balanced(fake_corpus):
    folder, summary = fake_corpus
    zero_shot = json.loads((folder / ZERO_SHOT_FILE).read_text())
    datalist = json.loads((folder / "datalist.json").read_text())
    by_uid = {item["uid"]: item for item in datalist["test"]}
    assert zero_shot["class_names"] == list(ZERO_SHOT_CLASSES)
    counts = Counter(item["class_name"] for item in zero_shot["test"])
    assert set(counts) == set(ZERO_SHOT_CLASSES) and len(set(counts.values())) == 1
    assert summary.zero_shot_per_class == next(iter(counts.values())) >= 5
    for item in zero_shot["test"]:
        assert isinstance(item["target"], int) and ZERO_SHOT_CLASSES[item["target"]] == item["class_name"]
        target = by_uid[item["uid"]]["target"]
        assert sum(target) == 1.0 and target[item["target"]] == 1.0
        assert item["image"] == by_uid[item["uid"]]["image"] and item["report"]
    assert len(load_datalist(folder / ZERO_SHOT_FILE, "test")) == len(zero_shot["test"])
    prompts = json.loads((folder / PROMPTS_FILE).read_text())
    assert set(prompts) == set(ZERO_SHOT_CLASSES)


def test_stratified_split_keeps_scarce_classes_in_test():
    strata = {f"r{i}": ("Pleural Effusion" if i < 20 else "other") for i in range(200)}
    split = stratified_split(strata, seed=3, min_test={"Pleural Effusion": 12})
    assert split == stratified_split(strata, seed=3, min_test={"Pleural Effusion": 12})
    test_effusions = sum(1 for uid, name in split.items() if name == "test" and strata[uid] != "other")
    assert test_effusions == 12
    assert Counter(name for uid, name in split.items() if strata[uid] == "other") == {"training": 126, "validation": 18, "test": 36}
    capped = stratified_split(strata, seed=3, min_test={"Pleural Effusion": 19})
    assert sum(1 for uid, name in capped.items() if name == "test" and strata[uid] != "other") == 13  # 2/3 of 20
    assert stratified_split(strata, seed=4, min_test={"Pleural Effusion": 12}) != split


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_regardless_of_workers_and_limit(tmp_path, capsys):
    reports = _fake_reports(per_class=3)
    build_corpus(tmp_path / "a", image_size=SIZE, seed=5, workers=1, reports=reports)
    build_corpus(tmp_path / "b", image_size=SIZE, seed=5, workers=2, reports=reports)
    bars = capsys.readouterr().err
    assert bars.count("rendering IU-Phantom: ") >= 2 and "img/s" in bars  # a progress bar each, with or without workers
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second
    build_corpus(tmp_path / "c", image_size=SIZE, seed=5, workers=1, reports=reports, limit=4)
    for name, content in _files(tmp_path / "c").items():
        if name.startswith(("images/", "masks/")):
            assert content == first[name], f"{name} depends on --limit"
    build_corpus(tmp_path / "d", image_size=SIZE, seed=6, workers=1, reports=reports)
    other = _files(tmp_path / "d")
    assert other["images/Car0.png"] != first["images/Car0.png"]


@pytest.mark.end_to_end
def test_cli_end_to_end_on_real_reports(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_demo_data.py"), "--output_dir", str(out), "--limit", "12", "--image_size", str(SIZE), "--workers", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "split sizes" in result.stdout and "SYNTHETIC" in result.stdout
    assert "without a renderer" in result.stdout
    content = json.loads((out / "datalist.json").read_text())
    items = [item for split in SPLITS for item in content[split]]
    assert 0 < len(items) <= 12
    assert all(item["uid"].startswith("CXR") for item in items)
    assert {p.name for p in (out / "images").iterdir()} == {f"{item['uid']}.png" for item in items}
    assert (out / ZERO_SHOT_FILE).is_file() and (out / PROMPTS_FILE).is_file()
    sheet = tmp_path / "sheet.png"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_contact_sheet.py"), "--datalist", str(out / "datalist.json"), "--output", str(sheet)],
        check=True,
        capture_output=True,
    )
    assert Image.open(sheet).size[0] > 4 * 200


def test_contact_sheet_covers_the_classes(fake_corpus, tmp_path):
    folder, _ = fake_corpus
    sheet = make_contact_sheet(folder / "datalist.json", tmp_path / "sheet.png", count=6, columns=3)
    image = np.asarray(Image.open(sheet).convert("RGB"))
    red = (image[..., 0] > 200) & (image[..., 1] < 100) & (image[..., 2] < 80)
    assert red.sum() > 20  # finding outlines drawn
