#!/usr/bin/env python
"""Check every item of a datalist with the image readers and tokeniser that training uses, and list
all bad items at once (truncated or missing images, non-image files, empty reports), before a long
run rather than one per failed start.

Prints one line per bad item (split[index] image: reason), then a summary line.
Exit status: 0 every item is good, 1 some item is bad, 2 the datalist (or the text encoder)
cannot be read.
"""

from __future__ import annotations

import argparse
import os
import sys

from reclf_monai.data import check_datalist_items, datalist_splits, load_datalist
from reclf_monai.data.tokenization import DEFAULT_MAX_LENGTH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datalist", help="datalist JSON (MONAI decathlon format, paths relative to its folder)")
    parser.add_argument("--split", nargs="+", help="splits to check (default: every split in the file)")
    parser.add_argument(
        "--image_size", type=int, default=224, help="side images are resized to, as in training (default 224)"
    )
    parser.add_argument(
        "--text_encoder", default=None, help="tokenizer folder or hub id (default: the bundled all-MiniLM-L6-v2)"
    )
    parser.add_argument(
        "--max_length", type=int, default=DEFAULT_MAX_LENGTH, help=f"report tokens (default {DEFAULT_MAX_LENGTH})"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="threads reading items (default: one per CPU)"
    )
    args = parser.parse_args(argv)
    if args.image_size < 1 or args.workers < 1:
        parser.error("--image_size and --workers must be at least 1")
    checks = []
    try:
        splits = args.split or datalist_splits(args.datalist)
        # No required keys: an item with neither image nor report is listed as bad, not fatal.
        items = {split: load_datalist(args.datalist, split, required_keys=()) for split in splits}
        for split in splits:  # all splits are loaded first: a bad split fails before hours of checking
            check = check_datalist_items(
                items[split], split, args.image_size, args.text_encoder, args.max_length, args.workers
            )
            for bad in check.bad_items:
                print(f"{bad.split}[{bad.index}] {bad.image or '(no image)'}: {bad.reason}", flush=True)
            checks.append(check)
    except (ValueError, OSError) as error:  # DataError is a ValueError; OSError: a text encoder folder
        print(f"check_datalist: {error}", file=sys.stderr)
        return 2
    total_bad = sum(len(check.bad_items) for check in checks)
    per_split = ", ".join(f"{check.split} {len(check.bad_items)} of {check.checked}" for check in checks)
    print(f"checked {sum(check.checked for check in checks)} items, {total_bad} bad ({per_split})")
    return 1 if total_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
