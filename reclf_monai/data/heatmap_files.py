"""Phrase heatmaps written as files aligned with their image: a colour overlay PNG and a NIfTI.

Both hold the heatmap at the image file's size in display orientation (the heatmap goes back
through the preprocessing's inverse first, MONAI's ``Invertd``):

- ``NAME_overlay.png``: the image in grey with the heatmap in colour on top (blue low, red high,
  more opaque where higher); pixel (row, column) of the PNG is pixel (row, column) of the image as
  a viewer shows it.
- ``NAME_heatmap.nii.gz``: the heatmap values (float32, summing to about 1 over the image's
  patches before upsampling), first axis x = image columns as ITK and medical viewers read NIfTI,
  identity affine; ``reclf_monai.data.read_image_2d``/``read_display_intensities`` give back
  (rows, columns).

Written here rather than with MONAI's ``SaveImage``: its writers take (columns, rows) arrays and
name files after the image alone (one image may have several phrases), and MONAI's
``blend_images`` needs matplotlib, which this project does not depend on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nibabel
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from PIL import Image

from .errors import DataError
from .image_loading import read_image_2d

OVERLAY_SUFFIX = "_overlay.png"
NIFTI_SUFFIX = "_heatmap.nii.gz"
MAX_OPACITY = 0.6


def _colours(values: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) in [0, 1] on a blue-cyan-yellow-red ramp ("jet")."""
    return np.stack([np.clip(1.5 - np.abs(4 * values - centre), 0, 1) for centre in (3, 2, 1)], axis=-1)


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: grey `image` (values in [0, 1]) under the colour-coded `heatmap`, which is
    stretched to [0, 1] and drawn with opacity growing to MAX_OPACITY at its maximum."""
    if image.shape != heatmap.shape:
        raise ValueError(f"image {image.shape} and heatmap {heatmap.shape} differ in size")
    low, high = float(heatmap.min()), float(heatmap.max())
    level = (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)
    opacity = MAX_OPACITY * level[..., None]
    blended = (1 - opacity) * np.clip(image, 0, 1)[..., None] + opacity * _colours(level)
    return np.round(blended * 255).astype(np.uint8)


def heatmap_file_stem(index: int, image_file: str | os.PathLike, phrase: str) -> str:
    """``0007_CXR12_left_pleural_effusion``: item number, image name and phrase."""
    slug = re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
    return f"{index:04d}_{Path(image_file).name.split('.')[0]}_{slug}"


def write_heatmap_files(heatmap: np.ndarray, image_file: str | os.PathLike, output_stem: str | os.PathLike) -> tuple[Path, Path]:
    """Write `heatmap` (rows, columns of `image_file`) as ``STEM_overlay.png`` and ``STEM_heatmap.nii.gz``."""
    image = read_image_2d(image_file)
    if image.shape != heatmap.shape:
        raise DataError(image_file, f"heatmap of size {heatmap.shape} for an image of size {image.shape}: not aligned")
    output_stem = Path(output_stem)
    output_stem.parent.mkdir(parents=True, exist_ok=True)
    overlay = output_stem.with_name(output_stem.name + OVERLAY_SUFFIX)
    Image.fromarray(heatmap_overlay(image, heatmap)).save(overlay)
    nifti = output_stem.with_name(output_stem.name + NIFTI_SUFFIX)
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(heatmap.T, dtype=np.float32), np.eye(4)), nifti)
    return overlay, nifti


class WriteHeatmapd(MapTransform):
    """Postprocessing step: write each item's heatmap (1, rows, columns), already inverted to its
    image's size, as overlay PNG and NIfTI in `output_dir`, named by :func:`heatmap_file_stem`.

    The image file is the `image_key` tensor's ``filename_or_obj``; the phrase and the item number
    come from the item (`phrase_key`, `index_key`). The written paths are added under
    ``overlay_file`` and ``heatmap_file``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        keys: KeysCollection = "pred",
        image_key: str = "image",
        phrase_key: str = "phrase",
        index_key: str = "item_index",
    ):
        super().__init__(keys)
        self.output_dir = Path(output_dir)
        self.image_key, self.phrase_key, self.index_key = image_key, phrase_key, index_key

    def __call__(self, data):
        item = dict(data)
        image_file = item[self.image_key].meta["filename_or_obj"]
        for key in self.key_iterator(item):
            heatmap = torch.as_tensor(item[key]).detach().float().cpu().numpy()
            if heatmap.ndim != 3 or heatmap.shape[0] != 1:
                raise ValueError(f"{key}: expected a (1, rows, columns) heatmap, got shape {heatmap.shape}")
            stem = heatmap_file_stem(int(item[self.index_key]), image_file, str(item[self.phrase_key]))
            overlay, nifti = write_heatmap_files(heatmap[0], image_file, self.output_dir / stem)
            item["overlay_file"], item["heatmap_file"] = str(overlay), str(nifti)
        return item
