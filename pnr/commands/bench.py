"""`pnr bench quality run|merge|table|figure ...`: the quality benchmark (pnr/bench/quality/).

The rest of the command line goes to the benchmark's own parser (`pnr bench quality -h`); `python
bench/quality.py ...` in a checkout is the same command. Speed benchmarks are run as scripts: `python
bench/<name>.py`.
"""

from __future__ import annotations

import argparse
import importlib

BENCHES = ("quality",)


def add_parser(sub):
    p = sub.add_parser("bench", help="quality benchmark on the built-in domain (pnr/bench/quality/)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bench", choices=BENCHES, help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its subcommand and options (see `pnr bench quality -h`)")
    p.set_defaults(func=run)
    return p


def run(args):
    return importlib.import_module(f"pnr.bench.{args.bench}").main(args.args or ["-h"])
