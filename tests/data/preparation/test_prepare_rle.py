import numpy as np
import pytest

from reclf_monai.data.preparation.rle import decode_rle, encode_rle

# A 6-row x 8-column image with an asymmetric shape: an "L" (column 1, rows 0-2, plus the
# foot at row 2, column 2) and the very last pixel (row 5, column 7). Column-major pixel
# numbers are col * 6 + row: 6, 7, 8 | 14 | 47, so the relative RLE is
# (gap 6, length 3), (gap 14 - 9 = 5, length 1), (gap 47 - 15 = 32, length 1).
KNOWN_SHAPE = (6, 8)
KNOWN_RLE = "6 3 5 1 32 1"


def known_mask():
    mask = np.zeros(KNOWN_SHAPE, dtype=bool)
    mask[0:3, 1] = True
    mask[2, 2] = True
    mask[5, 7] = True
    return mask


def test_decode_known_mask_pins_column_major_relative_orientation():
    decoded = decode_rle(KNOWN_RLE, KNOWN_SHAPE)
    np.testing.assert_array_equal(decoded, known_mask())
    # The row-major reading of the same numbers would put the L on row 0/1 instead.
    assert not decoded[0, 6] and decoded[1, 1]


def test_encode_known_mask():
    assert encode_rle(known_mask()) == KNOWN_RLE


def test_empty_marker_both_ways():
    assert not decode_rle("-1", (4, 5)).any()
    assert not decode_rle(" -1", (4, 5)).any()
    assert encode_rle(np.zeros((4, 5))) == "-1"


def test_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(50):
        shape = tuple(rng.integers(1, 30, size=2))
        mask = rng.random(shape) < rng.random()
        rle = encode_rle(mask)
        np.testing.assert_array_equal(decode_rle(rle, shape), mask)
        assert encode_rle(decode_rle(rle, shape)) == rle


@pytest.mark.parametrize(
    "rle, problem",
    [("5 3 2", "pairs"), ("1 a", "not an integer"), ("4 -2", "negative"), ("44 5", "past the 6x8 image")],
)
def test_bad_rle_is_refused(rle, problem):
    with pytest.raises(ValueError, match=problem):
        decode_rle(rle, KNOWN_SHAPE)
