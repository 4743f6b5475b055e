#!/usr/bin/env python
"""Prepare CheXpert-v1.0 for linear classification (five competition labels, uncertain-label
mapping) and the CheXpert 5x200 zero-shot / retrieval set (ids published; its patients are
excluded from training and validation, which are split by patient). See docs/datasets.md."""

import sys

from reclf_monai.data.preparation.chexpert import EXPECTED_LAYOUT, SAMPLE_RULES, UNCERTAIN_POLICIES, prepare_chexpert
from reclf_monai.data.preparation.cli import add_seed_option, add_skip_missing_option, build_parser, run


def main(argv=None) -> int:
    parser = build_parser(__doc__, EXPECTED_LAYOUT)
    parser.add_argument(
        "--uncertain", choices=sorted(UNCERTAIN_POLICIES), default="u-ones-ae",
        help="what an uncertain (-1) label becomes: u-ones-ae = 1 for Atelectasis and Edema, 0 for the others; "
        "gloria-mgca = also 1 for Pleural Effusion (the GLoRIA/MGCA code); u-ones / u-zeros = all 1 / all 0 "
        "(default: %(default)s; blank is always 0)",
    )
    parser.add_argument("--per-class", type=int, default=200, help="5x200 images per class (default: %(default)s)")
    parser.add_argument(
        "--sample-rule", choices=sorted(SAMPLE_RULES), default="mgca",
        help="5x200 eligibility: mgca = the class is the only positive and every other observation but "
        "No Finding is 0; competition = only the other four classes are checked (default: %(default)s)",
    )
    parser.add_argument(
        "--validation-size", type=int, default=5000,
        help="validation images: exactly this many images of the kept views, drawn from train.csv as whole "
        "patients without a 5x200 image (default: %(default)s)",
    )
    parser.add_argument("--all-views", action="store_true", help="keep lateral views too (default: frontal only)")
    add_seed_option(parser, 0, "the 5x200 and validation draws")
    add_skip_missing_option(parser)
    return run(
        parser,
        lambda args: prepare_chexpert(
            args.root, args.output, uncertain=args.uncertain, per_class=args.per_class, sample_rule=args.sample_rule,
            validation_size=args.validation_size, frontal_only=not args.all_views, seed=args.seed,
            skip_missing_images=args.skip_missing_images,
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
