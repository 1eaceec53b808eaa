"""`pnr bench quality run|merge|table|figure ...`: the quality benchmark (bench/quality.py in the checkout).

The benchmark scripts live in the repository's bench/ folder (not in the installed package); this command
finds bench/quality.py next to the pnr package of an editable install and passes the rest of the command
line to it. Speed benchmarks are run as scripts: `python bench/<name>.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from pnr.errors import PnrError

BENCHES = ("quality",)


def add_parser(sub):
    p = sub.add_parser("bench", help="quality benchmark on the built-in domain (bench/quality.py)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bench", choices=BENCHES, help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its subcommand and options (see `pnr bench quality -h`)")
    p.set_defaults(func=run)
    return p


def _load(name: str):
    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    if not path.is_file():
        raise PnrError(f"{path} not found: `pnr bench` needs a source checkout (pip install -e .)")
    spec = importlib.util.spec_from_file_location(f"pnr_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def run(args):
    return _load(args.bench).main(args.args or ["-h"])
