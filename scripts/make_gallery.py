#!/usr/bin/env python
"""A gallery of what a pretrained model looks at: phrase heatmaps over test images beside the
findings' true regions, and the local scorer's word weights (IRM's importance) over their reports.

Writes OUTPUT_DIR/gallery.md with one PNG per image: the image with the heatmap of its finding's
phrase ("right atelectasis") and the true region outlined in green, a cross where the heatmap
peaks (the pointing game's hit or miss), and a bar chart of the weights of the report's words
for that image. Images are a seeded choice of test findings of different kinds, from the
grounding bundle's items (:func:`reclf_monai.data.phrase_items`, :func:`grounding_items`), scored
through :class:`reclf_monai.image_text_inference.ImageTextInference`, i.e. as the bundles score.

The gallery shows IU report text (CC BY-NC-ND 4.0) and images rendered from it: keep it local,
never commit or publish it.

    python scripts/make_gallery.py --checkpoint demo_output/reclf_pretrain/models/model.pt \\
        --dataset_dir demo_output/iu_phantom --output_dir demo_output/gallery
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_erosion

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python scripts/make_gallery.py`
    sys.path.insert(0, str(ROOT))

OUTLINE = (40, 220, 60)
PEAK = (255, 255, 255)
TOP_WORDS = 3


def chosen_items(items: list[dict], count: int, seed: int) -> list[dict]:
    """`count` items of different finding groups where there are enough (a seeded shuffle, the
    first item of each group, then further items in the shuffled order)."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    firsts, seen = [], set()
    for item in shuffled:
        if item["group"] not in seen:
            seen.add(item["group"])
            firsts.append(item)
    rest = [item for item in shuffled if item not in firsts]
    return (firsts + rest)[:count]


def lifts(words: list) -> list:
    """The words with each weight divided by its uniform share (the word's pieces over all pieces):
    a word of three pieces holds three times a one-piece word's weight when the scorer weighs
    every piece alike, so the weight alone would favour long words."""
    from reclf_monai.handlers.word_heatmaps import ReportWord

    pieces = sum(len(word.positions) for word in words)
    return [ReportWord(word.text, word.positions, word.weight * pieces / len(word.positions)) for word in words]


def outlined(overlay: np.ndarray, region: np.ndarray, peak: tuple[int, int]) -> Image.Image:
    """The overlay with the region's border pixels in green and a cross at the heatmap's peak."""
    picture = overlay.copy()
    picture[region & ~binary_erosion(region, border_value=1)] = OUTLINE
    canvas = Image.fromarray(picture)
    row, column = peak
    arm = max(2, min(region.shape) // 40)
    draw = ImageDraw.Draw(canvas)
    draw.line((column - arm, row, column + arm, row), fill=PEAK)
    draw.line((column, row - arm, column, row + arm), fill=PEAK)
    return canvas


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="reclf_pretrain checkpoint (model.pt or checkpoint_epoch=E.pt)")
    parser.add_argument("--dataset_dir", required=True, help="IU-Phantom folder (datalist.json with findings and masks)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--images", type=int, default=6, help="how many test findings (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: CUDA when available")
    args = parser.parse_args(argv)
    if args.images < 1:
        raise SystemExit(f"--images must be at least 1, got {args.images}")

    from reclf_monai.data import grounding_items, heatmap_overlay, load_datalist, phrase_items
    from reclf_monai.data.image_loading import read_display_intensities
    from reclf_monai.handlers.word_heatmaps import word_weight_chart
    from reclf_monai.image_text_inference import ImageTextInference

    engine = ImageTextInference.from_checkpoint(args.checkpoint, device=args.device)
    if engine.model.local_matching is None:
        raise SystemExit(f"{args.checkpoint}: a global_only checkpoint has no word-to-region attention to show")
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    datalist = Path(args.dataset_dir) / "datalist.json"
    items = grounding_items(phrase_items(load_datalist(datalist, "test", required_keys=["image", "label", "report"])), output / "regions")
    if not items:
        raise SystemExit(f"{datalist}: no test finding with a region to show")
    chosen = chosen_items(items, args.images, args.seed)

    lines = [
        "# What the model looks at", "",
        f"Checkpoint `{args.checkpoint}`, {len(chosen)} test findings of IU-Phantom "
        f"(`{datalist}`, seed {args.seed}). Left: the image with the heatmap of the finding's phrase (blue low, red high), "
        "the finding's true region outlined in green, a white cross where the heatmap peaks. Right: the local scorer's "
        "weight of each report word for this image (IRM's importance for `irm`/`reclf`) over its uniform share, so 1 is "
        f"uniform and 2 twice that (a word's weight sums its word pieces', which is why it is divided by its share of the pieces); "
        f"the {TOP_WORDS} highest numbered.", "",
        "**Licence:** the reports are IU chest X-ray reports (CC BY-NC-ND 4.0) and the images are rendered from them: "
        "keep this gallery local; do not commit or publish it.", "",
    ]  # fmt: skip
    hits = 0
    for number, item in enumerate(chosen, start=1):
        heatmap = engine.similarity_map(item["image"], item["phrase"])
        grey = read_display_intensities(item["image"])
        grey = (grey - grey.min()) / max(float(np.ptp(grey)), 1e-8)
        region = read_display_intensities(item["region"]) >= 0.5
        peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
        hit = bool(region[peak])
        hits += hit
        stem = f"{number:02d}_{item['group'].replace(' ', '_').replace('(', '').replace(')', '')}"
        outlined(heatmap_overlay(grey, heatmap), region, peak).save(output / f"{stem}_heatmap.png")
        words = lifts(engine.word_weights(item["image"], item["report"]))
        ranked = sorted(range(len(words)), key=lambda index: -words[index].weight)[:TOP_WORDS]
        Image.fromarray(word_weight_chart(words, {index: rank for rank, index in enumerate(ranked, start=1)})).save(output / f"{stem}_words.png")
        lines += [
            f"## {number}. \"{item['phrase']}\" ({Path(item['image']).name})", "",
            f"Pointing game: {'hit' if hit else 'miss'} (the region covers {100 * item['region_fraction']:.1f} % of the image). "
            f"Words weighed most above uniform: {', '.join(f'{words[index].text} {words[index].weight:.3f}' for index in ranked)}.", "",
            f"![heatmap]({stem}_heatmap.png) ![word weights]({stem}_words.png)", "",
        ]  # fmt: skip
    lines.insert(2, f"Pointing-game hits in this gallery: {hits} of {len(chosen)}.\n")
    (output / "gallery.md").write_text("\n".join(lines))
    print(f"[gallery] {len(chosen)} findings, {hits} pointing-game hits: {output / 'gallery.md'} (licensed report text: keep it local)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
