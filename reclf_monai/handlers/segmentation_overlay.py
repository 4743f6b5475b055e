"""Input/label/prediction overlays for MONAI's ``TensorBoardImageHandler``.

MONAI's handler draws the batch's input and label as grey images and whatever its
`output_transform` returns as the output image. With :func:`segmentation_overlays` as
`output_transform` and ``max_channels=3`` that output is one RGB image in which a glance shows
hits, misses and false positives: the input in grey, the true mask in green, the predicted mask in
red, both in yellow (each at half opacity, so the anatomy stays visible underneath).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

MASK_OPACITY = 0.5


def _plane(value) -> np.ndarray:
    """A (1, H, W) or (H, W) image or mask as a float (H, W) array."""
    array = torch.as_tensor(value).detach().float().cpu().numpy()
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"expected a one-channel 2-D image or mask, got shape {array.shape}")
    return array


def mask_overlay(image, label, prediction) -> np.ndarray:
    """(3, H, W) float RGB in [0, 1]: `image` (intensities in [0, 1]) in grey, the `label` mask in
    green, the `prediction` mask in red, both in yellow; masks are foreground where > 0.5."""
    grey, truth, predicted = _plane(image), _plane(label) > 0.5, _plane(prediction) > 0.5
    if not grey.shape == truth.shape == predicted.shape:
        raise ValueError(f"image {grey.shape}, label {truth.shape} and prediction {predicted.shape} differ in size")
    colour = np.stack([predicted, truth, np.zeros_like(truth)]).astype(np.float32)
    opacity = MASK_OPACITY * (truth | predicted)
    return (1 - opacity) * np.clip(grey, 0, 1) + opacity * colour


def segmentation_overlays(output: Sequence[Mapping]) -> list[np.ndarray]:
    """`output_transform` for ``TensorBoardImageHandler``: the :func:`mask_overlay` of each item
    of a decollated evaluator output (items with ``image``, ``label`` and a thresholded ``pred``)."""
    return [mask_overlay(item["image"], item["label"], item["pred"]) for item in output]
