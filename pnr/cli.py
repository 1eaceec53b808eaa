"""`pnr` command line: fit | render | data | prior | edit | batch | eval | bench | export.

Each subcommand lives in pnr/commands/<name>.py with `add_parser(subparsers)`; the chosen one's
`run(args)` does the work. PnrError, and a filesystem error on a named path (an --out under a file, no
permission, disk full), become a one-line message and exit 2 unless --debug (accepted before or after the
subcommand).
"""

from __future__ import annotations

import argparse
import os
import sys

# OpenMP threads that wait at the end of each parallel region spin before sleeping (libgomp: 300k spins by
# default). On a CPU shared with other jobs that spinning costs a time slice per op whenever the other thread is
# descheduled: on the loaded 2-core machine the prior's forward took 6.0 s (0.9 s with passive waits or one thread).
# A short spin keeps most of the idle speed (~5-10 % slower measured) and removes that cliff (docs/speed.md). Set
# before torch loads libgomp; an explicit GOMP_SPINCOUNT / OMP_WAIT_POLICY wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from pnr.commands import batch, bench, data, edit, eval as eval_cmd, export, fit, prior, render
from pnr.errors import PnrError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pnr", description="Perturb-and-Revise: text-guided 3D object editing.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    for mod in (fit, render, data, prior, edit, batch, eval_cmd, bench, export):
        mod.add_parser(sub)
    for sp in _all_subparsers(sub):  # `pnr edit ... --debug` works too (SUPPRESS: it never undoes `pnr --debug`)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    return p


def _all_subparsers(action) -> list[argparse.ArgumentParser]:
    out = []
    for sp in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
        out.append(sp)
        for a in sp._actions:
            if isinstance(a, argparse._SubParsersAction):
                out += _all_subparsers(a)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PnrError as e:
        if args.debug:
            raise
        print(f"pnr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `pnr data vocab | head`: the reader left; stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        if args.debug or not e.filename:
            raise
        print(f"pnr {args.command}: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pnr {args.command}: interrupted; the same command continues from the last checkpoint, if one was "
              "written (fit: add --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
