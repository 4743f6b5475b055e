#!/usr/bin/env python
"""Prepare MIMIC-CXR-JPG 2.x with the MIMIC-CXR reports as the pretraining datalist:
frontal (PA/AP) images, FINDINGS + IMPRESSION, official split, empty reports dropped and
counted. See docs/datasets.md."""

import sys
from pathlib import Path

from reclf_monai.data.preparation.cli import add_skip_missing_option, build_parser, run
from reclf_monai.data.preparation.mimic_cxr import EXPECTED_LAYOUT, prepare_mimic_cxr


def main(argv=None) -> int:
    parser = build_parser(__doc__, EXPECTED_LAYOUT)
    reports = parser.add_mutually_exclusive_group()
    reports.add_argument("--reports", type=Path, help="folder holding files/pXX/pSUBJECT/sSTUDY.txt (default: --root)")
    reports.add_argument("--sectioned-csv", type=Path, help="CSV with columns study, findings, impression instead")
    add_skip_missing_option(parser)
    return run(
        parser,
        lambda args: prepare_mimic_cxr(
            args.root, args.output, reports_root=args.reports, sectioned_csv=args.sectioned_csv,
            skip_missing_images=args.skip_missing_images,
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
