"""``onair lake``: committed files of the data lake."""

from __future__ import annotations

import argparse
import sys

from core.settings import lake_root


def cmd_lake(args: argparse.Namespace) -> int:
    from connectors.lake import data_files, local_path

    root = local_path(args.lake) / args.zone
    files = data_files(root)
    for f in files:
        print(f"{f.stat().st_size:>10}  {f.relative_to(root)}")
    print(f"{len(files)} files under {root}", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("lake", help="list committed files of a lake zone")
    p.add_argument("zone", nargs="?", default="raw", choices=("raw", "transformed"))
    p.add_argument("--lake", default=lake_root(), help="lake root (env ONAIR_LAKE)")
    p.set_defaults(func=cmd_lake)

