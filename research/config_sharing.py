#!/usr/bin/env python
"""How much of each bundle config repeats another bundle's config of the same kind, verbatim.

    python -m research.config_sharing [--bundles_dir bundles]

Why: the architecture review asked that at most 20 % of a config's entries appear verbatim in
another bundle's config of the same file name, and that every documented override id stay as it
is. This measures the first and shows where it collides with the second. A config is flattened
into entries, (id, JSON value), with ids as `--id#path value` addresses them; an entry is shared
when another bundle's config of the same name holds the same id with the same value. Shared
entries are split into the interface (top-level ids, which users override on the command line:
`--dataset_dir`, `--device`, `--amp`, `--num_workers`, ..., and the standard sections named in
`INTERFACE_SECTIONS`) and the wiring (the rest: components, their arguments and references).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

SEPARATOR = "#"  # as users write override ids (MONAI also reads "::")
INTERFACE_SECTIONS = ("imports", "initialize", "finalize", "layout", "device")


def config_entries(config, prefix: str = "") -> Iterator[tuple[str, str]]:
    """The config's leaves as (id, value as sorted JSON); an empty list or dict is a leaf."""
    if isinstance(config, dict) and config:
        items = config.items()
    elif isinstance(config, list) and config:
        items = enumerate(config)
    else:
        yield prefix, json.dumps(config, sort_keys=True)
        return
    for key, value in items:
        yield from config_entries(value, f"{prefix}{SEPARATOR}{key}" if prefix else str(key))


def is_interface(entry_id: str) -> bool:
    top = entry_id.split(SEPARATOR)[0]
    return SEPARATOR not in entry_id or top in INTERFACE_SECTIONS


def sharing_table(bundles_dir: Path) -> list[dict]:
    """One row per config that at least two bundles have: its entries and the shares of them
    (all, interface, wiring) that appear verbatim in another bundle's config of the same name."""
    by_name: dict[str, dict[str, set]] = defaultdict(dict)
    for path in sorted(bundles_dir.glob("*/configs/*.json")):
        by_name[path.name][path.parts[-3]] = set(config_entries(json.loads(path.read_text())))
    rows = []
    for name, bundles in sorted(by_name.items()):
        if len(bundles) < 2:
            continue
        for bundle, entries in sorted(bundles.items()):
            elsewhere = set().union(*(other for key, other in bundles.items() if key != bundle))
            shared = entries & elsewhere
            interface = sum(is_interface(entry_id) for entry_id, _ in shared)
            rows.append({
                "config": name, "bundle": bundle, "entries": len(entries), "shared": len(shared) / len(entries),
                "interface": interface / len(entries), "wiring": (len(shared) - interface) / len(entries),
            })  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles_dir", type=Path, default=Path("bundles"))
    args = parser.parse_args(argv)
    rows = sharing_table(args.bundles_dir)
    if not rows:
        raise SystemExit(f"no config file name occurs in two bundles under {args.bundles_dir}")
    print("| config | bundle | entries | shared | of which interface | of which wiring |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['config']} | {row['bundle']} | {row['entries']} | {row['shared']:.0%} | {row['interface']:.0%} | {row['wiring']:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
