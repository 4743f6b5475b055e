#!/usr/bin/env python
"""Prepare COVIDx (3-class release) for linear classification: official test list as test,
official training list split 80/20 as in MGCA. See docs/datasets.md."""

import sys

from reclf_monai.data.preparation.cli import add_seed_option, add_skip_missing_option, build_parser, run
from reclf_monai.data.preparation.covidx import EXPECTED_LAYOUT, prepare_covidx


def main(argv=None) -> int:
    parser = build_parser(__doc__, EXPECTED_LAYOUT)
    parser.add_argument("--train-list", default="train.txt", help="training list in ROOT (default: %(default)s)")
    parser.add_argument("--test-list", default="test.txt", help="test list in ROOT (default: %(default)s)")
    add_seed_option(parser, 0, "the training / validation split")
    add_skip_missing_option(parser)
    return run(
        parser,
        lambda args: prepare_covidx(
            args.root, args.output, train_list=args.train_list, test_list=args.test_list, seed=args.seed,
            skip_missing_images=args.skip_missing_images,
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
