"""Predicted masks as PNG files beside nothing else: what segmentation inference and MONAI Label write."""

from __future__ import annotations

import os

import numpy as np
from monai.transforms import SaveImaged


def save_mask_pngs(output_dir: str | os.PathLike, key: str = "pred") -> SaveImaged:
    """``SaveImaged`` writing each binary mask under `key` as ``<image name>_mask.png`` (0/255,
    uint8) in `output_dir`, at the input file's size (invert the preprocessing first).

    Tensors are in display orientation (rows, columns) as :func:`chest_xray_transforms` keeps
    them, so PIL's writer is told not to reverse the axes.
    """
    writer = SaveImaged(
        keys=key,
        output_dir=os.fspath(output_dir),
        output_postfix="mask",
        output_ext=".png",
        writer="PILWriter",
        scale=255,
        output_dtype=np.uint8,
        resample=False,
        separate_folder=False,
        print_log=False,
    )
    return writer.set_options(write_kwargs={"reverse_indexing": False})
