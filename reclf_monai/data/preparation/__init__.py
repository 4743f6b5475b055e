"""Turn the official downloads of public chest X-ray datasets into datalists.

One module per dataset (:mod:`.mimic_cxr`, :mod:`.chexpert`, :mod:`.rsna_pneumonia`,
:mod:`.siim_pneumothorax`, :mod:`.covidx`), each following the published MGCA / GLoRIA / G2D
protocol for that dataset (splits, seeds, label mappings; see ``docs/datasets.md``), plus the
shared pieces they use: CSV tables, file checks, splits, masks, SIIM run-length encoding.
The command-line entry points are ``scripts/prepare_*.py``.
"""
