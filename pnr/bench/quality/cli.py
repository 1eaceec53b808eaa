"""The `quality` command line (`python bench/quality.py ...`, `pnr bench quality ...`): one subcommand per
task; `run` takes its options from RunConfig."""

from __future__ import annotations

import argparse
import importlib

from .config import RunConfig
from .report import README_SECTION, cmd_ablation, cmd_compare, cmd_figure, cmd_gap, cmd_left, cmd_table, cmd_versus
from .results import cmd_merge
from .run import cmd_run


def _overview() -> str:
    return importlib.import_module(__package__).__doc__


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="quality", description=_overview(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or continue) the benchmark jobs")
    RunConfig.add_arguments(r)
    r.set_defaults(func=lambda ns: cmd_run(RunConfig.from_args(ns)))
    m = sub.add_parser("merge", help="fold the shard files into the results file")
    m.add_argument("--jsonl", default="bench/results/quality.jsonl")
    m.set_defaults(func=cmd_merge)
    t = sub.add_parser("table", help="markdown tables per edit type and averaged")
    t.add_argument("--jsonl", default="bench/results/quality.jsonl")
    t.add_argument("--md", default=None, help="write here (default: print)")
    t.add_argument("--split", choices=("test", "dev"), default="test")
    t.add_argument("--seeds", type=int, default=2)
    t.add_argument("--figure", default=None, help="also draw the figure grid at this path (relative to --md) and link it")
    t.add_argument("--readme", default=None, help="also replace the averaged and paired tables in this README's "
                   f"'{README_SECTION}' section")
    t.set_defaults(func=cmd_table)
    lf = sub.add_parser("left", help="jobs not finished yet, per variant")
    lf.add_argument("--jsonl", default="bench/results/quality.jsonl")
    lf.add_argument("--split", choices=("test", "dev"), default="test")
    lf.add_argument("--seeds", type=int, default=2)
    lf.add_argument("--rate", type=float, default=25.0, help="jobs per device-minute for the estimate "
                    "(bench/gpu/README.md: ~25 with 24 shards on nvidia-h200-x2)")
    lf.set_defaults(func=cmd_left)
    c = sub.add_parser("compare", help="the same jobs in two result files: means and mean per-job difference")
    c.add_argument("--a", required=True, help="results JSONL (its shard files are read too)")
    c.add_argument("--b", required=True)
    c.add_argument("--variant", default=None, help="only this variant (e.g. pnr)")
    c.set_defaults(func=cmd_compare)
    vs = sub.add_parser("versus", help="new runs against the committed baselines on the same edits (fail = 0 and over successes)")
    vs.add_argument("--new", required=True)
    vs.add_argument("--base", default="bench/results/quality.jsonl")
    vs.add_argument("--variants", default="pnr,pnr_norevise")
    vs.add_argument("--against", default="pnr,sds,pds,idu,regen")
    vs.add_argument("--seed", type=int, default=None, help="only this seed (default: every seed, one row each)")
    vs.add_argument("--paired", action="store_true", help="only the edits every row has a record of (without it a "
                    "missing job counts as a failure, accuracy 0)")
    vs.set_defaults(func=cmd_versus)
    ab = sub.add_parser("ablation", help="every ablation tag against a reference tag on the same edits")
    ab.add_argument("--jsonl", required=True)
    ab.add_argument("--ref", default="pnr+ref")
    ab.add_argument("--seed", type=int, default=0)
    ab.add_argument("--types", default="shape,pose,object")
    ab.set_defaults(func=cmd_ablation)
    gp = sub.add_parser("gap", help="one metric of variant A minus B on the jobs both finished: per type, on the edits "
                        "both got right, and by A's η")
    gp.add_argument("--jsonl", required=True)
    gp.add_argument("--a", default="pnr")
    gp.add_argument("--b", default="sds")
    gp.add_argument("--metric", default="lpips_to_source")
    gp.add_argument("--seed", type=int, default=None, help="only this seed (default: every seed)")
    gp.set_defaults(func=cmd_gap)
    f = sub.add_parser("figure", help="PNG grid: source | each method | ground truth")
    f.add_argument("--jsonl", default="bench/results/quality.jsonl")
    f.add_argument("--thumbs", default=None)
    f.add_argument("--out", default="docs/quality_grid.png")
    f.add_argument("--per-type", type=int, default=2)
    f.add_argument("--views", type=int, default=1, choices=(1, 2, 3, 4))
    f.add_argument("--methods", default=None)
    f.add_argument("--split", choices=("test", "dev"), default="test")
    f.add_argument("--edits", default=None, help="only these edit ids, comma list, in this order")
    f.add_argument("--video", default=None, help="also an MP4 turntable grid of the same rows and the columns that "
                   "have turntables (`run --turntables`)")
    f.set_defaults(func=cmd_figure)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    return int(a.func(a) or 0)
