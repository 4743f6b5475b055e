#!/usr/bin/env python
"""Prepare the RSNA Pneumonia Detection Challenge (stage 2) for classification (70/15/15) and
segmentation (boxes -> rectangular mask PNGs; 16,010/5,337/5,337), with the GLoRIA / MGCA
splits. See docs/datasets.md."""

import sys

from reclf_monai.data.preparation.cli import add_seed_option, add_skip_missing_option, build_parser, run
from reclf_monai.data.preparation.rsna_pneumonia import EXPECTED_LAYOUT, prepare_rsna_pneumonia


def main(argv=None) -> int:
    parser = build_parser(__doc__, EXPECTED_LAYOUT)
    add_seed_option(parser, 0, "the splits (0 reproduces GLoRIA / MGCA)")
    add_skip_missing_option(parser)
    return run(
        parser,
        lambda args: prepare_rsna_pneumonia(
            args.root, args.output, seed=args.seed, skip_missing_images=args.skip_missing_images
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
