#!/usr/bin/env python
"""Write small 16-bit PNG copies of a datalist's images and a datalist that points at them, so
that training decodes each full-size image once instead of once per epoch.

    python scripts/resize_images.py --datalist DATA/datalist.json --output DIR [--longest_side 512] [--workers N]

DIR/datalist.json keeps every item, with `image` at the copy and `original_image` at the source.
Use it as the bundles' `--datalist`. An interrupted run resumes where it stopped. See
docs/datasets.md ("Decoding once") and docs/benchmarks.md (images per second).
"""

import argparse
import os
import sys
from pathlib import Path

from reclf_monai.data import DataError
from reclf_monai.data.preparation.resized_copies import write_resized_copies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datalist", type=Path, required=True, help="a datalist JSON (any split names)")
    parser.add_argument("--output", type=Path, required=True, help="folder for images/ and datalist.json")
    parser.add_argument("--longest_side", type=int, default=512, help="pixels of a copy's longest side (default: %(default)s; keep it above the training image_size)")
    parser.add_argument("--keys", nargs="+", default=["image"], help="item keys holding images to copy (default: image)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores, %(default)s)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        written = write_resized_copies(args.datalist, args.output, args.longest_side, args.keys, args.workers, progress=not args.no_progress)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"[resize] wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
