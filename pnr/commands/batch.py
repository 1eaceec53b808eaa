"""`pnr batch JOBS.jsonl --out DIR`: many edits on Ray workers that each load the prior once.

JOBS.jsonl: one JSON object per line, {"id": "mug_blue", "source": "runs/mug", "prompt": "in blue"} plus any of
"method", "preset", "seed", "eta", "source_prompt", "fit_steps", "field" and EditConfig settings by name
("edit_steps": 40; see `pnr edit --help`). Every line is checked before anything runs.
One worker per GPU when CUDA is there, else --workers CPU workers (default 1). DIR/<id>/ gets what `pnr edit`
writes; DIR/results.jsonl one line per job run. Run the same command again to continue: finished jobs are
skipped, failed and unfinished ones run again. Exit status 1 when a job failed (its error is in results.jsonl).
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("batch", help="run many edits from a JOBS.jsonl on Ray workers (resumable)",
                       description=__doc__)
    p.add_argument("jobs", help="JOBS.jsonl: one JSON object per line (id, source, prompt, optional settings)")
    p.add_argument("--out", required=True, help="output folder: DIR/<id>/ per job, DIR/results.jsonl")
    p.add_argument("--prior", default="builtin", help="builtin | sd15 | sd21 | mvdream | PATH (one for all jobs)")
    p.add_argument("--workers", type=int, default=None,
                   help="CPU workers (default 1); on GPUs at most this many (default one per GPU)")
    p.add_argument("--device", default="auto", help="auto (GPUs when there are any), cpu or cuda")
    p.add_argument("--address", default=None, help="join this Ray cluster (e.g. auto or HOST:6379) instead of "
                   "starting a local one; pnr must be installed on its nodes and DIR visible to them")
    p.add_argument("--backend", choices=("ray", "inline"), default="ray",
                   help="inline: no Ray, the jobs one after another in this process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args):
    from pnr.batch import read_jobs, run_jobs

    jobs = read_jobs(args.jobs)
    s = run_jobs(jobs, Path(args.out), prior=args.prior, workers=args.workers, device=args.device,
                 address=args.address, backend=args.backend, progress=not args.quiet)
    print(f"pnr batch: {s.line()}")
    if s.failed:
        shown = ", ".join(map(str, s.failed_ids[:10])) + (" ..." if len(s.failed_ids) > 10 else "")
        print(f"pnr batch: failed: {shown} (errors in {s.results}; the same command runs them again)")
        return 1
    return 0
