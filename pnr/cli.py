"""`pnr` command line: fit | render | data | prior | edit | eval | bench.

Each subcommand lives in pnr/commands/<name>.py with `add_parser(subparsers)`; the chosen one's
`run(args)` does the work. PnrError becomes a one-line message and exit 2 unless --debug.
"""

from __future__ import annotations

import argparse
import sys

from pnr.commands import bench, data, edit, eval as eval_cmd, fit, prior, render
from pnr.errors import PnrError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pnr", description="Perturb-and-Revise: text-guided 3D object editing.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    for mod in (fit, render, data, prior, edit, eval_cmd, bench):
        mod.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PnrError as e:
        if args.debug:
            raise
        print(f"pnr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pnr {args.command}: interrupted (checkpoints written so far are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
