"""`quality run --workers K`: the benchmark's jobs on a pnr.batch worker pool (issue 18) instead of N hand-started
`--shard I/N` processes. One unit of work is one benchmark edit (its source object) with every job of it still to
run (all variants, seeds and ablation tags), so the source is fitted (or read from --source-cache) once per unit.
A QualityWorker loads the prior and the metric encoder once, runs a unit as one shard runs that edit, and returns
the unit's records; the driver alone appends them to the results JSONL (the file a sharded run writes, read by
`read_results`), so a resumed run skips finished jobs exactly as before."""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .jobs import Job, select_edits
from .results import Appender
from .run import Budget, RunContext, prepare_source, run_job, warm_up

BACKENDS = ("processes", "ray", "inline")


@dataclass(frozen=True)
class Unit:
    """One benchmark edit and its jobs still to run (pnr.batch needs `id`: the edit id)."""

    id: str
    jobs: tuple[Job, ...]


class QualityWorker:
    """Built once per pool worker (pnr.batch's `worker_cls`): torch threads (--threads, default 1, as the shards'
    `--threads 1`), the prior and the metric encoder on `device`; `run(unit)` -> one result record:
    {"id", "status": "done" | "failed", "records": [...], "jobs_run", "jobs_left", "stopped", "error", ...}.
    A unit that raises is "failed" with the records of its jobs that finished before (they count as done); the
    budget (--max-minutes, from the driver's start `t_start`) is checked before the fit and before each job, as
    a shard checks it, and a unit it stops is "done" with jobs_left > 0 and stopped true."""

    def __init__(self, ctx: RunContext, t_start: float | None = None, device: str = "cpu", index: int = 0):
        from pnr.metrics.eval import load_backbone
        from pnr.priors.builtin.prior import load_builtin_prior

        torch.set_num_threads(ctx.run.threads or 1)
        self.dev, self.index = torch.device(device), index
        name = torch.cuda.get_device_name(self.dev) if self.dev.type == "cuda" else ctx.device_name
        self.ctx = replace(ctx, run=replace(ctx.run, device=str(self.dev)), device_name=name)
        a = self.ctx.run
        self.edits = {e.id: e for e in select_edits(a.split)}
        self.prior = load_builtin_prior(a.prior, device=self.dev)
        self.encoder = load_backbone(a.backbone, str(self.dev))
        self.budget = Budget(a.max_minutes, t_start if t_start is not None else time.time())
        self.warmed = a.no_warm_up

    def run(self, unit: Unit) -> dict:
        t0 = time.time()
        base = {"id": unit.id, "worker": self.index, "pid": os.getpid(), "device": self.ctx.device_name}
        recs, job_s, fit_s = [], [], None
        left = list(unit.jobs)

        def result(status: str, **extra) -> dict:
            return {**base, "status": status, "records": recs, "jobs_run": len(job_s), "jobs_left": len(left),
                    "fit_seconds": fit_s, "job_seconds": job_s, "seconds": time.time() - t0, **extra}

        try:
            if not self.budget.allows(left[0].variant, with_fit=True):
                return result("done", stopped=True)
            src = prepare_source(self.edits[unit.id], self.ctx, self.dev)
            fit_s = src.fit_s
            self.budget.record_fit(fit_s)
            if not self.warmed:
                warm_up(src, self.ctx, self.prior, self.encoder, self.dev)
                self.warmed = True
            while left:
                job = left[0]
                if not self.budget.allows(job.variant):
                    return result("done", stopped=True)
                tj = time.time()
                out = self.run_job(src, job)
                s = time.time() - tj
                self.budget.record_job(job.variant, s)
                recs.extend({**r, "worker": self.index} for r in out)
                job_s.append([job.variant, job.seed, s])
                left.pop(0)
        except Exception as e:  # noqa: BLE001 - a unit's failure is its result; the others go on
            from pnr.errors import PnrError

            msg = str(e) if isinstance(e, PnrError) else f"{type(e).__name__}: {e}"
            return result("failed", error=msg, traceback=traceback.format_exc()[-4000:], stopped=False)
        return result("done", stopped=False)

    def run_job(self, src, job: Job) -> list[dict]:
        """One job's record(s), as a shard makes them (run.run_job)."""
        return run_job(src, job, self.ctx, self.prior, self.encoder, self.dev)


def batch_log(out: Path, shard: str | None) -> Path:
    """The pool's own log next to the results (one line per unit: pnr.batch's results.jsonl), named so that
    `result_files` (the results and their .shardI files) never reads it."""
    tail = f"-shard{shard.partition('/')[0]}" if shard else ""
    return out.with_name(f"{out.stem}.batch{tail}{out.suffix}")


def pool_plan(a) -> tuple[str, int]:
    """(pnr.batch device, workers per GPU) of a RunConfig; a bad setting is a one-line error (SystemExit) before
    anything runs. On a GPU, --workers K without --workers-per-gpu spreads the K workers over the GPUs
    (ceil(K / GPUs) per GPU, worker i on GPU i // that)."""
    from pnr.batch import plan_workers
    from pnr.errors import PnrError

    device = "cpu" if a.device == "cpu" else "cuda"
    gpus = torch.cuda.device_count() if device == "cuda" and torch.cuda.is_available() else 0
    k = a.workers_per_gpu or (max(1, math.ceil((a.workers or 1) / gpus)) if gpus else 1)
    if a.backend == "inline" and ((a.workers or 1) > 1 or a.workers_per_gpu is not None):
        raise SystemExit("--backend inline runs one edit at a time in this process: it takes no --workers K > 1 or "
                         "--workers-per-gpu")
    if a.backend != "inline":
        try:
            plan_workers(a.workers, device, None, k)
        except PnrError as e:
            raise SystemExit(f"quality run: {e}") from None
    return device, k


def run_pool(todo: list, ctx: RunContext, mine: Path, t_start: float, worker_cls: type = QualityWorker) -> int:
    """Runs `todo` ([(edit, [Job, ...]), ...], the jobs not done yet) on `--workers` pool workers (--backend,
    --workers-per-gpu); every unit's records are appended to `mine` as the unit comes back. -> exit status
    (1 if a unit failed)."""
    from pnr.batch import run_jobs

    device, k = pool_plan(ctx.run)
    a = ctx.run
    absolute = {n: str(Path(v).resolve()) for n, v in (("prior", a.prior), ("source_cache", a.source_cache))
                if v and (n == "source_cache" or Path(v).exists())}  # workers may start in another folder (Ray)
    ctx = replace(ctx, run=replace(a, **absolute), thumbs_dir=ctx.thumbs_dir.resolve() if ctx.thumbs_dir else None)
    a = ctx.run
    units = [Unit(e.id, tuple(js)) for e, js in todo]
    n_jobs = sum(len(u.jobs) for u in units)
    writer = Appender(mine)
    budget = Budget(a.max_minutes, t_start)  # the driver's view: hands out no unit once the budget is spent
    state = {"jobs": 0, "units": 0, "stopped": False, "failed": 0}

    def on_result(rec: dict) -> None:
        recs = rec.get("records") or []
        if recs:
            writer.append(recs)
        if rec.get("fit_seconds") is not None:
            budget.record_fit(rec["fit_seconds"])
        for variant, _seed, s in rec.get("job_seconds") or []:
            budget.record_job(variant, s)
        state["jobs"] += rec.get("jobs_run") or 0
        state["units"] += 1
        state["stopped"] |= bool(rec.get("stopped"))
        ok = rec.get("status") == "done"
        state["failed"] += not ok
        print(f"quality: [{state['units']}/{len(units)} edits, {state['jobs']}/{n_jobs} jobs] {rec.get('id')}: "
              f"{rec.get('jobs_run') or 0} jobs in {rec.get('seconds') or 0:.1f} s on worker {rec.get('worker')}"
              + (f", {rec['jobs_left']} left (budget)" if rec.get("stopped") and rec.get("jobs_left") else "")
              + ("" if ok else f"; FAILED: {rec.get('error')}"), flush=True)

    def stop() -> bool:
        return state["stopped"] or not budget.allows(None, with_fit=True)

    log = batch_log(Path(a.out), a.shard)
    if stop():  # not even a fit fits: no worker is started
        print(f"quality: finished 0 jobs in {budget.elapsed():.0f} s; {n_jobs} left (stopped before --max-minutes "
              f"{a.max_minutes})", flush=True)
        return 0
    s = run_jobs(units, mine.parent, workers=a.workers, device=device, backend=a.backend or "processes",
                 progress=False, worker_cls=worker_cls, worker_kwargs={"ctx": ctx, "t_start": t_start},
                 on_result=on_result, results=log, stop=stop, workers_per_gpu=k)
    left = n_jobs - state["jobs"]
    print(f"quality: finished {state['jobs']} jobs in {budget.elapsed():.0f} s on {s.workers} "
          f"worker{'s' * (s.workers != 1)} ({a.backend or 'processes'})"
          + (f"; {left} left" if left else "; all done")
          + (f" (stopped before --max-minutes {a.max_minutes})" if left and (state["stopped"] or s.not_started) else "")
          + (f"; {state['failed']} edits failed (see {log})" if state["failed"] else ""), flush=True)
    return 1 if state["failed"] else 0
