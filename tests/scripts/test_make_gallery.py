"""scripts/make_gallery.py: phrase heatmaps over test findings with their true regions, and word weights."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_testing import write_tiny_pretraining_checkpoint
from PIL import Image

from reclf_monai.data import grounding_items, load_datalist, phrase_items
from reclf_monai.image_text_inference import ImageTextInference
from scripts import make_gallery

pytestmark = pytest.mark.end_to_end


def test_the_gallery_shows_each_chosen_finding_with_its_region_peak_and_word_lifts(zero_shot_corpus, tiny_pretraining_checkpoint, tmp_path):
    output = tmp_path / "gallery"
    assert make_gallery.main(["--checkpoint", str(tiny_pretraining_checkpoint), "--dataset_dir", str(zero_shot_corpus),
                              "--output_dir", str(output), "--images", "3", "--device", "cpu"]) == 0  # fmt: skip
    page = (output / "gallery.md").read_text()
    sections = page.split("\n## ")[1:]
    assert len(sections) == 3 and "CC BY-NC-ND" in page
    items = grounding_items(phrase_items(load_datalist(zero_shot_corpus / "datalist.json", "test", required_keys=["image", "label", "report"])), tmp_path / "regions")
    chosen = make_gallery.chosen_items(items, 3, seed=0)
    assert len({item["group"] for item in chosen}) == 3  # different kinds of finding first
    engine = ImageTextInference.from_checkpoint(tiny_pretraining_checkpoint, device="cpu")
    hits = 0
    for section, item in zip(sections, chosen):
        assert section.startswith(f"{sections.index(section) + 1}. \"{item['phrase']}\"")
        heatmap_file = output / section.split("![heatmap](")[1].split(")")[0]
        with Image.open(heatmap_file) as picture:
            image = np.asarray(Image.open(item["image"]))
            assert picture.size == (image.shape[1], image.shape[0])  # at the image's own size
            pixels = np.asarray(picture.convert("RGB"))
        region = np.asarray(Image.open(item["region"])) > 127
        assert (pixels[region] == make_gallery.OUTLINE).all(axis=-1).any()  # the region's border is drawn
        heatmap = engine.similarity_map(item["image"], item["phrase"])
        hit = bool(region[np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)])
        hits += hit
        assert f"Pointing game: {'hit' if hit else 'miss'}" in section
    assert f"Pointing-game hits in this gallery: {hits} of 3." in page


def test_word_lifts_divide_each_weight_by_its_share_of_the_pieces():
    from reclf_monai.handlers.word_heatmaps import ReportWord

    words = make_gallery.lifts([ReportWord("pneumothorax", [1, 2, 3], 0.6), ReportWord("no", [4], 0.4)])
    assert [word.weight for word in words] == pytest.approx([0.6 / 0.75, 0.4 / 0.25])
    uniform = make_gallery.lifts([ReportWord("pneumothorax", [1, 2, 3], 0.75), ReportWord("no", [4], 0.25)])
    assert [word.weight for word in uniform] == pytest.approx([1.0, 1.0])


def test_a_global_only_checkpoint_is_refused_with_the_reason(zero_shot_corpus, tmp_path):
    checkpoint = write_tiny_pretraining_checkpoint(tmp_path / "global_only.pt", aggregation="global_only")
    with pytest.raises(SystemExit, match="global_only checkpoint has no word-to-region attention"):
        make_gallery.main(["--checkpoint", str(checkpoint), "--dataset_dir", str(zero_shot_corpus), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # refused before writing anything
