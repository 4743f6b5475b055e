"""A segmentation result handed to MONAI Label in MONAI's (x, y) order.

This project keeps 2-D arrays as (rows, columns), as a viewer shows the file
(:mod:`reclf_monai.data.image_loading`). MONAI's PIL/ITK readers and writers, and therefore
MONAI Label 0.8.5, take (x, y) = (columns, rows): its writer transposes every result before ITK
writes it, and its ``Restored`` step compares the result (channel first) with the reference
image's ``spatial_shape`` and resizes any axis that differs. Without this step a served mask comes
back transposed, or squashed for a non-square image.

:class:`ToXYOrderd`, the last step of ``reclf_segmentation``'s inference postprocessing, drops
the channel of the prediction, transposes it to (x, y) and gives the reference image's metadata
the matching ``spatial_shape``, so that both of MONAI Label's steps leave the mask as it is and
its PNG has the input's rows and columns. It runs after ``SaveImaged``, so the bundle's own
outputs are not affected.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform


class ToXYOrderd(MapTransform):
    """(1, rows, columns) predictions in `keys` -> (columns, rows); `ref_key`'s ``spatial_shape``
    (rows, columns) -> (columns, rows)."""

    def __init__(self, keys: KeysCollection, ref_key: str = "image"):
        super().__init__(keys)
        self.ref_key = ref_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            prediction = d[key]
            if prediction.ndim != 3 or prediction.shape[0] != 1:
                raise ValueError(f"'{key}' should be one 2-D channel (1, rows, columns), got shape {tuple(prediction.shape)}")
            d[key] = prediction[0].T
        reference = d.get(self.ref_key)
        if isinstance(reference, MetaTensor) and "spatial_shape" in reference.meta:
            reference.meta["spatial_shape"] = np.asarray(reference.meta["spatial_shape"])[::-1].copy()
        return d
