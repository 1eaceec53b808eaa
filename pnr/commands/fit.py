"""`pnr fit` (placeholder until its issue lands)."""

from pnr.errors import PnrError


def add_parser(sub):
    p = sub.add_parser("fit", help="(not yet implemented)")
    p.set_defaults(func=run)
    return p


def run(args):
    raise PnrError("'pnr fit' is not implemented yet")
