"""`pnr batch JOBS.jsonl --out DIR`: many edits on workers that each load the prior once.

JOBS.jsonl: one JSON object per line, {"id": "mug_blue", "source": "runs/mug", "prompt": "in blue"} plus any of
"method", "preset", "seed", "eta", "source_prompt", "fit_steps", "field" and EditConfig settings by name
("edit_steps": 40; see `pnr edit --help`). Every line is checked before anything runs.
Backends: ray (default; pip install 'pnr[batch]'), processes (a pool of local worker processes, no Ray: for a
machine that cannot install it) and inline (one job after another in this process). Workers: --workers-per-gpu
K per GPU (default 1; an edit is launch-bound, so several, e.g. 8-16 on an H200, keep a GPU busy) when CUDA is
there, else
--workers CPU workers (default 1); --workers-per-gpu above 1 without a GPU is an error (use --workers).
DIR/<id>/ gets what `pnr edit` writes; DIR/results.jsonl one line per job run. Run the same command again to
continue: finished jobs are skipped, failed and unfinished ones run again. Exit status 1 when a job failed
(its error is in results.jsonl).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {v}")
    return v


def add_parser(sub):
    p = sub.add_parser("batch", help="run many edits from a JOBS.jsonl on parallel workers (resumable)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", help="JOBS.jsonl: one JSON object per line (id, source, prompt, optional settings)")
    p.add_argument("--out", required=True, help="output folder: DIR/<id>/ per job, DIR/results.jsonl")
    p.add_argument("--prior", default="builtin", help="builtin | sd15 | sd21 | mvdream | PATH (one for all jobs)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="CPU workers (default 1); on GPUs at most this many in all (default: GPUs x "
                   "--workers-per-gpu)")
    p.add_argument("--workers-per-gpu", type=_positive_int, default=1, metavar="K",
                   help="workers sharing each GPU (default 1): worker i runs on GPU i // K; ray and processes "
                   "backends only, and only with a GPU (on the CPU it is an error: use --workers)")
    p.add_argument("--device", default="auto", help="auto (GPUs when there are any), cpu or cuda")
    p.add_argument("--address", default=None, help="join this Ray cluster (e.g. auto or HOST:6379) instead of "
                   "starting a local one; pnr must be installed on its nodes and DIR visible to them (ray only)")
    p.add_argument("--backend", choices=("ray", "processes", "inline"), default="ray",
                   help="ray: Ray actors (default); processes: local worker processes, no Ray needed; inline: "
                   "no workers, the jobs one after another in this process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args):
    from pnr.batch import read_jobs, run_jobs

    jobs = read_jobs(args.jobs)
    s = run_jobs(jobs, Path(args.out), prior=args.prior, workers=args.workers, device=args.device,
                 address=args.address, backend=args.backend, progress=not args.quiet,
                 workers_per_gpu=args.workers_per_gpu)
    print(f"pnr batch: {s.line()}")
    if s.failed:
        shown = ", ".join(map(str, s.failed_ids[:10])) + (" ..." if len(s.failed_ids) > 10 else "")
        print(f"pnr batch: failed: {shown} (errors in {s.results}; the same command runs them again)")
        return 1
    return 0
