#!/usr/bin/env python
"""Prepare SIIM-ACR Pneumothorax Segmentation (stage 1) for segmentation: RLE -> mask PNGs,
70/15/15 split by image, balanced training set as in MGCA. See docs/datasets.md."""

import sys

from reclf_monai.data.preparation.cli import add_seed_option, add_skip_missing_option, build_parser, run
from reclf_monai.data.preparation.siim_pneumothorax import EXPECTED_LAYOUT, prepare_siim_pneumothorax


def main(argv=None) -> int:
    parser = build_parser(__doc__, EXPECTED_LAYOUT)
    parser.add_argument(
        "--keep-all-negatives", action="store_true",
        help="keep every negative training image (default: as many negatives as positives, drawn with --seed)",
    )
    add_seed_option(parser, 0, "the split and the negative draw")
    add_skip_missing_option(parser)
    return run(
        parser,
        lambda args: prepare_siim_pneumothorax(
            args.root, args.output, seed=args.seed, balance_training=not args.keep_all_negatives,
            skip_missing_images=args.skip_missing_images,
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
