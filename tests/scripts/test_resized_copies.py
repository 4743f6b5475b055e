"""scripts/resize_images.py: small lossless copies of a datalist's images that train like the
originals, a datalist pointing at them, resumable, and a clear refusal of unreadable images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repository import ROOT
from sample_files import real_chest_dicom

from reclf_monai.data import DataError, chest_xray_transforms, load_datalist
from reclf_monai.data.preparation.resized_copies import write_resized_copies

SCRIPT = ROOT / "scripts" / "resize_images.py"
LONGEST_SIDE = 512


@pytest.fixture
def datalist(tmp_path) -> Path:
    """A tall 8-bit PNG (900 x 600, listed in two splits), a small 16-bit PNG and a real DICOM (1955 x 1841)."""
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    rows, columns = np.mgrid[0:900, 0:600]
    # smooth shading and a soft bright blob, like a radiograph's content at this scale
    shading = 0.5 + 0.3 * np.sin(rows / 120) * np.cos(columns / 90) + 0.2 * np.exp(-(((rows - 240) / 90) ** 2 + ((columns - 135) / 60) ** 2))
    tall = np.round(np.clip(shading, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(tall).save(images / "tall.png")
    small = (np.arange(120 * 90).reshape(120, 90) * 6).astype(np.uint16)
    Image.fromarray(small).save(images / "small.png")
    content = {
        "class_names": ["a", "b"],
        "training": [{"image": "images/tall.png", "report": "one"}, {"image": str(real_chest_dicom()), "report": "two"}],
        "test": [{"image": "images/tall.png", "target": 1}, {"image": "images/small.png", "target": 0}],
    }
    path = tmp_path / "data" / "datalist.json"
    path.write_text(json.dumps(content))
    return path


def test_copies_are_small_train_like_their_originals_and_keep_the_items(datalist, tmp_path):
    output = tmp_path / "resized"
    written = write_resized_copies(datalist, output, LONGEST_SIDE, progress=False)
    content = json.loads(written.read_text())
    assert content["class_names"] == ["a", "b"]
    assert [item.get("report") or item.get("target") for item in content["training"] + content["test"]] == ["one", "two", 1, 0]
    transform = chest_xray_transforms(image_size=224)
    for split in ("training", "test"):
        originals = load_datalist(datalist, split)
        for copy, original in zip(load_datalist(written, split), originals):
            assert copy["original_image"] == str(Path(original["image"]).resolve())
            with Image.open(copy["image"]) as image:
                assert image.mode.startswith("I;16") or image.mode == "I"
                size = image.size[::-1]
            source = np.asarray(Image.open(original["image"])).shape if original["image"].endswith(".png") else (1955, 1841)
            if max(source) <= LONGEST_SIDE:
                assert size == source  # never enlarged
            else:
                assert max(size) == LONGEST_SIDE and abs(size[0] / size[1] - source[0] / source[1]) < 0.01
            difference = np.abs(np.asarray(transform({"image": copy["image"]})["image"]) - np.asarray(transform({"image": original["image"]})["image"]))
            # two resizes instead of one may round the short side one pixel differently; the content agrees
            assert difference.mean() < 0.01 and np.quantile(difference, 0.99) < 0.05, (copy["image"], difference.mean(), np.quantile(difference, 0.99))
    assert len(list((output / "images").rglob("*.png"))) == 3  # the PNG listed twice is copied once


def test_a_second_run_reuses_the_copies(datalist, tmp_path, capsys):
    output = tmp_path / "resized"
    write_resized_copies(datalist, output, LONGEST_SIDE, progress=False)
    modified = {path: path.stat().st_mtime_ns for path in (output / "images").rglob("*.png")}
    write_resized_copies(datalist, output, LONGEST_SIDE, progress=False)
    assert "3 images, 3 already copied, 0 to write" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in (output / "images").rglob("*.png")} == modified


@pytest.mark.end_to_end
def test_unreadable_images_are_named_and_no_datalist_is_written(datalist, tmp_path):
    broken = datalist.parent / "images" / "broken.png"
    broken.write_bytes((datalist.parent / "images" / "small.png").read_bytes()[:60])
    content = json.loads(datalist.read_text())
    content["test"].append({"image": "images/broken.png", "target": 0})
    datalist.write_text(json.dumps(content))
    output = tmp_path / "resized"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--datalist", str(datalist), "--output", str(output), "--longest_side", str(LONGEST_SIDE), "--workers", "2", "--no_progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "1 image(s) could not be copied; no datalist written" in result.stderr and f"{broken}: unreadable or corrupt image" in result.stderr
    assert not (output / "datalist.json").exists()
    assert len(list((output / "images").rglob("*.png"))) == 3  # the readable ones are kept for the next run
    with pytest.raises(DataError, match="could not be copied"):
        write_resized_copies(datalist, output, LONGEST_SIDE, progress=False)
