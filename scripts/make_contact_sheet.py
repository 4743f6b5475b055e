#!/usr/bin/env python
"""Write a contact sheet of IU-Phantom: a dozen SYNTHETIC images with finding outlines and report
excerpts. The output shows IU report text (CC BY-NC-ND 4.0): keep it local, never commit it.
"""

from __future__ import annotations

import argparse

from reclf_monai.phantom.contact_sheet import make_contact_sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datalist", required=True, help="datalist.json written by prepare_demo_data.py")
    parser.add_argument("--output", required=True, help="PNG file to write")
    parser.add_argument("--count", type=int, default=12, help="number of images (default 12)")
    parser.add_argument("--columns", type=int, default=4)
    args = parser.parse_args(argv)
    path = make_contact_sheet(args.datalist, args.output, args.count, args.columns)
    print(f"contact sheet written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
