"""SIIM-ACR Pneumothorax run-length encoding (RLE) of binary masks.

The competition's RLE (``train-rle.csv``, ``EncodedPixels``) differs from the usual Kaggle RLE
in two ways, both checked against the competition's published ``mask_functions.py``:

* pixels are numbered **column-major** (Fortran order) over the image in display orientation:
  pixel ``(row, col)`` of an image with ``rows`` rows is number ``col * rows + row``
  (``mask_functions.rle2mask`` returns ``mask.reshape(width, height)``, which its users
  transpose with ``.T`` to get the display image);
* the numbers are pairs ``(gap, length)`` where ``gap`` counts pixels from the **end of the
  previous run** (from pixel 0 for the first run), not an absolute start.

``-1`` marks an image without pneumothorax. Numbering starts at 0.
"""

from __future__ import annotations

import numpy as np

EMPTY_MARKER = "-1"


def decode_rle(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of `shape` = (rows, cols) from one SIIM RLE string (``-1`` -> empty)."""
    rows, cols = shape
    text = rle.strip()
    if text in ("", EMPTY_MARKER):
        return np.zeros(shape, dtype=bool)
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError as err:
        raise ValueError(f"RLE holds a value that is not an integer ({err})") from None
    if values.size % 2:
        raise ValueError(f"RLE needs (gap, length) pairs, got {values.size} numbers")
    if (values < 0).any():
        raise ValueError("RLE holds a negative gap or length")
    gaps, lengths = values[0::2], values[1::2]
    ends = np.cumsum(gaps + lengths)
    starts = ends - lengths
    if ends[-1] > rows * cols:
        raise ValueError(f"RLE runs to pixel {int(ends[-1])}, past the {rows}x{cols} image")
    # +1 where a run starts, -1 where it ends; the running sum is > 0 inside runs.
    change = np.zeros(rows * cols + 1, dtype=np.int64)
    np.add.at(change, starts, 1)
    np.add.at(change, ends, -1)
    flat = np.cumsum(change[:-1]) > 0
    return flat.reshape(shape, order="F")


def encode_rle(mask: np.ndarray) -> str:
    """SIIM RLE string of a 2D mask (non-zero = inside); ``-1`` for an empty mask.

    Runs are maximal (never two touching runs), so ``encode_rle(decode_rle(s, shape)) == s``
    for every RLE the competition's own encoder writes. Unlike that encoder, a run that
    reaches the last pixel is kept.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2D mask, got shape {mask.shape}")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    if edges.size == 0:
        return EMPTY_MARKER
    starts, ends = edges[0::2], edges[1::2]
    previous_ends = np.concatenate([[0], ends[:-1]])
    pairs = np.stack([starts - previous_ends, ends - starts], axis=1).ravel()
    return " ".join(str(int(v)) for v in pairs)
