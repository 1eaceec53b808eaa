"""`pnr render` (placeholder until its issue lands)."""

from pnr.errors import PnrError


def add_parser(sub):
    p = sub.add_parser("render", help="(not yet implemented)")
    p.set_defaults(func=run)
    return p


def run(args):
    raise PnrError("'pnr render' is not implemented yet")
