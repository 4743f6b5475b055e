"""Turn the official downloads of public chest X-ray datasets into datalists.

One module per dataset (:mod:`.mimic_cxr`, :mod:`.chexpert`, :mod:`.rsna_pneumonia`,
:mod:`.siim_pneumothorax`, :mod:`.covidx`), each following the published MGCA / GLoRIA / G2D
protocol for that dataset (splits, seeds, label mappings; see ``docs/datasets.md``), plus the
shared pieces they use: CSV tables, file checks, splits, masks, SIIM run-length encoding.
The command-line entry points are ``scripts/prepare_*.py``.
"""

from .chexpert import prepare_chexpert
from .covidx import prepare_covidx
from .mimic_cxr import prepare_mimic_cxr
from .reporting import PreparationReport
from .rle import decode_rle, encode_rle
from .rsna_pneumonia import prepare_rsna_pneumonia
from .siim_pneumothorax import prepare_siim_pneumothorax

__all__ = [
    "PreparationReport",
    "decode_rle",
    "encode_rle",
    "prepare_chexpert",
    "prepare_covidx",
    "prepare_mimic_cxr",
    "prepare_rsna_pneumonia",
    "prepare_siim_pneumothorax",
]
