"""Many edits, spread over workers that each load the prior once (`pnr batch JOBS.jsonl --out DIR`, issue 18).

JOBS.jsonl holds one JSON object per line: {"id", "source", "prompt"} and optionally "method", "preset", "seed",
"eta", "source_prompt", "fit_steps", "field" and any EditConfig setting by name ("edit_steps": 40). Every line
is checked before anything runs (`read_jobs`: a PnrError naming the line and the bad key or value).

`run_jobs` runs them on Ray (`pip install 'pnr[batch]'`, backend="ray"): `workers_per_gpu` (K, default 1) actors
per GPU when CUDA is there (num_gpus=1/K each), else N CPU actors; each actor builds its worker once (EditWorker:
loads the prior) and is handed one job at a time, so a fast worker takes more jobs. Local Ray unless `address`
names a cluster (or Ray is already initialised by the caller, which is then reused and left running).
backend="processes" does the same without Ray (a machine that cannot install it): local worker processes
started with 'spawn', worker i on GPU i // K (CUDA_VISIBLE_DEVICES set in the worker before CUDA starts), the
same workers, hand-out and records (`_dispatch` serves both). K above 1 with no GPU is an error (--workers is
the CPU's knob). Every local worker gets cores // workers torch threads. backend="inline" runs the jobs one
after another in this process (no workers; for debugging).

Output: DIR/<id>/ is `edit_to_dir`'s folder (checkpoint/, edit.json, turntable.mp4, contact.png) and
DIR/results.jsonl gets one line per job run: {"id", "status": "done" | "failed", "error", "seconds", ...},
appended by the driver alone in one write + fsync; a truncated last line (a driver killed mid-write) is
ignored on read and cut off before the next append. A job whose DIR/<id>/edit.json is finished is skipped
(a run is resumable: run the same command again; a job stopped half-way continues from its DIR/<id>/state.pt).
A job that raises, or whose worker process dies, is recorded as failed with the message and the other jobs
go on (a dead worker is replaced); failed jobs run again on the next run. The last line per id in
results.jsonl is the job's latest outcome (`read_results`).

For other kinds of job (e.g. the quality benchmark), pass `worker_cls`: a class built once per worker as
`worker_cls(**worker_kwargs, device="cuda" | "cpu", index=i)` (it must be importable on the workers) whose
`run(job) -> dict` returns at least {"status": "done" | "failed"} (an exception it raises is recorded as the
job's failure); jobs need an `id` attribute and must pickle; `is_done(job)` (a result dict or None) decides what
to skip; `on_result(rec)` sees every outcome in the driver, e.g. to write the records a job returned into a
file of its own.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from pnr.errors import PnrError

RESULTS = "results.jsonl"
JOB_KEYS = ("id", "source", "prompt", "method", "preset", "seed", "eta", "source_prompt", "fit_steps", "field")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# ---------------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    id: str
    source: str
    prompt: str
    method: str = "pnr"
    preset: str = "paper"
    seed: int = 0
    eta: float | None = None  # None: Alg. 2 chooses η
    source_prompt: str | None = None  # None: the caption stored with the source
    fit_steps: int = 2000  # a dataset source is fitted first (into DIR/<id>/source), as `pnr edit` does
    field: str = "small"
    settings: dict = dc_field(default_factory=dict)  # EditConfig overrides
    line: int = 0  # line number in JOBS.jsonl (0: made in code)

    def config(self):
        from pnr.edit.config import preset

        return preset(self.preset, method=self.method, eta=self.eta, seed=self.seed, **self.settings)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in JOB_KEYS}
        d.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()})
        return d


def _cli_to_key(msg: str) -> str:
    """EditConfig names settings as CLI options (--edit-steps); in a job they are keys (edit_steps)."""
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), msg)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_job(obj: Any, where: str = "job", check_source: bool = True) -> Job:
    """A Job from one decoded JSON line; PnrError "<where>: <what is wrong>" otherwise."""
    from pnr.edit.config import PRESETS, EditConfig

    def bad(msg):
        raise PnrError(f"{where}: {msg}")

    if not isinstance(obj, dict):
        bad(f"expected a JSON object {{\"id\": ..., \"source\": ..., \"prompt\": ...}}, got {type(obj).__name__}")
    cfg_fields = {f.name: f for f in fields(EditConfig)}
    known = set(JOB_KEYS) | (set(cfg_fields) - {"method", "eta", "seed"})
    for k in obj:
        if k not in known:
            close = difflib.get_close_matches(str(k), sorted(known), n=1, cutoff=0.6)
            bad(f"unknown key {k!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                + "; a job takes id, source, prompt, method, preset, seed, eta, source_prompt, fit_steps, field "
                "and EditConfig settings (pnr edit --help)")
    for k in ("id", "source", "prompt"):
        if k not in obj:
            bad(f"missing {k!r}")
    jid = obj["id"]
    if _is_int(jid):
        jid = str(jid)
    if not isinstance(jid, str) or not _ID.match(jid) or jid in (RESULTS,) or set(jid) == {"."}:
        bad(f"id {obj['id']!r} must be a folder name: letters, digits, '.', '_', '-' (at most 128), "
            "starting with a letter or digit")
    if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
        bad(f"prompt {obj['prompt']!r} must be a non-empty string: what to change, e.g. \"in blue\"")
    if not isinstance(obj["source"], str) or not obj["source"]:
        bad(f"source {obj['source']!r} must be a path to a pnr checkpoint or a transforms.json dataset")
    if check_source and not Path(obj["source"]).exists():
        bad(f"source {obj['source']!r}: no such checkpoint or dataset")
    sp = obj.get("source_prompt")
    if sp is not None and not isinstance(sp, str):
        bad(f"source_prompt {sp!r} must be a string or null")
    pre = obj.get("preset", "paper")
    if pre not in PRESETS:
        bad(f"preset {pre!r} is not one of {', '.join(PRESETS)}")
    seed = obj.get("seed", 0)
    if not _is_int(seed):
        bad(f"seed {seed!r} must be an integer")
    eta = obj.get("eta")
    if eta == "auto":
        eta = None
    if eta is not None and not _is_num(eta):
        bad(f"eta {eta!r} must be 'auto' or a number in [0, 1]")
    fit_steps = obj.get("fit_steps", 2000)
    if not _is_int(fit_steps) or fit_steps < 1:
        bad(f"fit_steps {fit_steps!r} must be an integer >= 1")
    from pnr.field.config import FIELD_PRESETS

    fld = obj.get("field", "small")
    if fld not in FIELD_PRESETS:
        bad(f"field {fld!r} must be one of {', '.join(FIELD_PRESETS)}")
    method = obj.get("method", "pnr")
    if not isinstance(method, str):
        bad(f"method {method!r} must be a string")
    settings = {}
    for k, v in obj.items():
        if k in JOB_KEYS:
            continue
        default = cfg_fields[k].default
        if isinstance(default, tuple):
            ok = isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v)
            v = tuple(float(x) for x in v) if ok else v
            want = "a list of two numbers [LO, HI]"
        elif isinstance(default, bool):
            ok, want = isinstance(v, bool), "true or false"
        elif _is_int(default):
            ok, want = _is_int(v), "an integer"
        elif isinstance(default, str):
            ok, want = isinstance(v, str), "a string"
        else:  # float or None-defaulted float
            ok, want = _is_num(v) or (v is None and default is None), "a number" + (" or null" if default is None else "")
            v = float(v) if _is_num(v) else v
        if not ok:
            bad(f"{k} {v!r} must be {want}")
        settings[k] = v
    job = Job(id=jid, source=obj["source"], prompt=obj["prompt"], method=method, preset=pre, seed=seed,
              eta=None if eta is None else float(eta), source_prompt=sp, fit_steps=fit_steps, field=fld,
              settings=settings)
    try:
        job.config()  # EditConfig checks every value and names the setting
    except ValueError as e:  # ConfigError names the setting (.field) and the problem; older ones by flag
        name, problem = getattr(e, "field", None), getattr(e, "problem", None)
        bad(f"{name} {problem}" if name and problem else _cli_to_key(str(e)))
    return job


def read_jobs(path: str | Path, check_source: bool = True) -> list[Job]:
    """Every job of a JOBS.jsonl (blank lines and lines starting with # are skipped), all checked first:
    PnrError "JOBS.jsonl line N: ..." for the first bad line, and for an id used twice."""
    path = Path(path)
    if not path.is_file():
        raise PnrError(f"{path}: no such jobs file")
    jobs, seen = [], {}
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        where = f"{path.name} line {n}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise PnrError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
        job = parse_job(obj, where, check_source=check_source)
        job = replace(job, line=n)
        if job.id in seen:
            raise PnrError(f"{where}: id {job.id!r} is used by line {seen[job.id]} too; every job needs its own id "
                           "(its output folder)")
        seen[job.id] = n
        jobs.append(job)
    if not jobs:
        raise PnrError(f"{path}: no jobs (one JSON object per line)")
    return jobs


# ----------------------------------------------------------------------------------------- results.jsonl


def _repair(path: Path) -> bool:
    """Cuts a truncated last line (no newline: a writer killed mid-write) off `path`. True if it did."""
    if not path.is_file():
        return False
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return False
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        f.seek(max(0, size - (1 << 20)))  # look back at most 1 MiB for the last newline
        tail = f.read()
        cut = tail.rfind(b"\n")
        keep = (size - len(tail) + cut + 1) if cut >= 0 else 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return True


def append_result(path: str | Path, rec: dict) -> None:
    """One JSON line appended in a single write, then fsync (a crash leaves at most a truncated last line)."""
    line = (json.dumps(rec, default=_json_default) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_results(path: str | Path) -> dict[str, dict]:
    """{id: its last record} of a results.jsonl; unreadable lines (a truncated last line) are skipped."""
    out = {}
    path = Path(path)
    if not path.is_file():
        return out
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "id" in rec:
            out[str(rec["id"])] = rec
    return out


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def finished_edit(out_dir: str | Path, job: Job) -> dict | None:
    """The result line of a job whose DIR/<id>/edit.json is finished, else None. A finished edit of another
    prompt or method in that folder is an error (PnrError): the job would silently not run."""
    p = Path(out_dir) / job.id / "edit.json"
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not rec.get("finished"):
        return None
    if rec.get("prompt") != job.prompt or rec.get("method") != job.method:
        raise PnrError(f"{p.parent} holds a finished edit of {rec.get('prompt')!r} (method {rec.get('method')}), "
                       f"not job {job.id!r}'s {job.prompt!r} ({job.method}); remove the folder or give the job "
                       "another id")
    return {"id": job.id, "status": "done", "out": str(p.parent), "prompt": job.prompt, "method": job.method,
            "eta": rec.get("eta"), "conditioning_text": rec.get("conditioning_text"),
            "edit_seconds": (rec.get("seconds") or {}).get("total"), "recovered_from": "edit.json"}


# ------------------------------------------------------------------------------------------------ worker


def _message(e: BaseException) -> str:
    return str(e) if isinstance(e, PnrError) else f"{type(e).__name__}: {e}"


class EditWorker:
    """Loads the prior once; `run(job)` edits job.source into out_dir/<job.id> with `edit_to_dir` and returns
    its result line (never raises for a job's own failure)."""

    def __init__(self, out_dir: str, prior: str = "builtin", device: str = "cpu", index: int = 0,
                 threads: int | None = None):
        import torch

        from pnr.priors.load import load_prior

        if threads:
            torch.set_num_threads(threads)
        self.out_dir, self.prior_name, self.device, self.index = Path(out_dir), prior, device, index
        t0 = time.time()
        self.prior = load_prior(prior, device=device)
        self.load_seconds = time.time() - t0
        self._src_key, self._src = None, None  # the last checkpoint source (jobs on one source reuse it)

    def _source(self, job: Job, out: Path):
        """-> (field, occupancy, EditSource) as `pnr edit` loads it (pnr.edit.prepare.load_source)."""
        from pnr.edit.config import SourceConfig
        from pnr.edit.prepare import load_source

        if self._src_key == job.source:
            return self._src
        src = load_source(job.source, out, self.device, SourceConfig(field=job.field, fit_steps=job.fit_steps),
                          progress=False)
        if src[2].kind == "checkpoint":  # a dataset is fitted into the job's own folder: not shared
            self._src_key, self._src = job.source, src
        return src

    def run(self, job: Job) -> dict:
        from pnr.edit.run import edit_to_dir

        t0 = time.time()
        out = self.out_dir / job.id
        base = {"id": job.id, "prompt": job.prompt, "method": job.method, "out": str(out), "worker": self.index,
                "host": socket.gethostname(), "pid": os.getpid(), "device": self.device}
        try:
            cfg = job.config()
            field, occ, src = self._source(job, out)
            res, rec = edit_to_dir(field, occ, self.prior, job.prompt, job.source_prompt or src.caption, cfg, out,
                                   resume=True, progress=False, started_at=t0,
                                   extra_record={"source": src.to_dict(), "prior": self.prior_name, "editor": None,
                                                 "preset": job.preset,
                                                 "batch": {"job": job.to_dict(), "worker": self.index}})
            return {**base, "status": "done", "eta": res.eta, "conditioning_text": rec["conditioning_text"],
                    "resumed_from": res.resumed_from, "edit_seconds": res.seconds, "seconds": time.time() - t0}
        except Exception as e:  # noqa: BLE001 - a job's failure is its result, never the batch's
            tb = None if isinstance(e, PnrError) else traceback.format_exc()[-4000:]
            return {**base, "status": "failed", "error": _message(e), "traceback": tb, "seconds": time.time() - t0}

    def ping(self) -> int:
        return os.getpid()


# ------------------------------------------------------------------------------------------------ driver


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    workers: int = 0
    results: str = ""
    failed_ids: list = dc_field(default_factory=list)
    not_started: int = 0  # left for a later run because `stop()` said so

    @property
    def jobs_per_minute(self) -> float:
        return self.done / (self.seconds / 60.0) if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s on "
                f"{self.workers} worker{'s' * (self.workers != 1)} ({self.jobs_per_minute:.2f} jobs/min); "
                f"results in {self.results}" + (f"; {self.not_started} not started" if self.not_started else ""))


BACKENDS = ("ray", "processes", "inline")


def cores() -> int:
    """CPU cores this process may use (its affinity mask: a container's or a job scheduler's share), not the host's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_threads(workers: int, ncores: int | None = None) -> int:
    """Torch threads per worker: the cores shared out, at least one (16 workers on one GPU that each start a
    thread per core would fight over the CPU that launches their kernels)."""
    return max(1, (ncores or cores()) // max(1, workers))


def worker_device(index: int, workers_per_gpu: int, gpus: int) -> str:
    """Worker `index`'s device when `workers_per_gpu` (K) workers share each of `gpus` GPUs: "cuda:<index // K>"
    (workers fill the GPUs in order, so a restarted worker keeps its GPU), "cpu" when there are no GPUs."""
    if workers_per_gpu < 1:
        raise ValueError(f"workers_per_gpu must be >= 1, got {workers_per_gpu}")
    if gpus <= 0:
        return "cpu"
    gpu = index // workers_per_gpu
    if not 0 <= gpu < gpus:
        raise ValueError(f"worker {index} does not fit on {gpus} GPU(s) x {workers_per_gpu} workers")
    return f"cuda:{gpu}"


def _gpu_count(device: str, address: str | None) -> int:
    """GPUs the workers may use: none for --device cpu, the Ray cluster's with --address, else this machine's."""
    import torch

    if device == "cpu":
        return 0
    if address is not None:
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0
    else:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "cuda" and gpus == 0:
        raise PnrError("--device cuda: no CUDA GPU " + ("in the Ray cluster" if address else "here"))
    return gpus


def plan_workers(workers: int | None, device: str, address: str | None,
                 workers_per_gpu: int = 1) -> tuple[int, bool]:
    """(number of workers, on GPU?). GPU: `workers_per_gpu` per GPU (`workers` caps the total); CPU: `workers`,
    default 1. workers_per_gpu > 1 with no GPU is an error rather than ignored: a CPU run would quietly measure
    something else than asked, and --workers is the CPU's knob."""
    if device not in ("auto", "cpu", "cuda"):
        raise PnrError(f"--device {device!r}: expected auto, cpu or cuda")
    if workers is not None and workers < 1:
        raise PnrError(f"--workers must be >= 1, got {workers}")
    if not _is_int(workers_per_gpu) or workers_per_gpu < 1:
        raise PnrError(f"--workers-per-gpu must be an integer >= 1, got {workers_per_gpu!r}")
    gpus = _gpu_count(device, address)
    if gpus:
        total = gpus * workers_per_gpu
        return (min(total, workers) if workers else total), True
    if workers_per_gpu > 1:
        where = "--device cpu" if device == "cpu" else ("no GPU in the Ray cluster" if address else "no CUDA GPU here")
        raise PnrError(f"--workers-per-gpu {workers_per_gpu} shares GPUs, but {where}; on the CPU use --workers N "
                       "(N CPU workers) instead")
    return (workers or 1), False


def _ray_init(address: str | None, n: int, gpu: bool):
    """Connects to (or starts) Ray; returns (ray, whether we started it, so must shut it down)."""
    try:
        import ray
    except ImportError:
        raise PnrError("pnr batch runs on Ray: pip install 'pnr[batch]' (or ray); --backend processes runs a pool "
                       "of local worker processes and --backend inline the jobs one after another in this "
                       "process instead") from None
    if ray.is_initialized():
        return ray, False
    import logging

    kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **kw)
    else:
        import torch

        ncpu = max(n, os.cpu_count() or 1) if gpu else n
        ray.init(address="local", num_cpus=ncpu, num_gpus=torch.cuda.device_count() if gpu else 0, **kw)
    return ray, True


def run_jobs(jobs: list, out_dir: str | Path, prior: str = "builtin", workers: int | None = None,
             device: str = "auto", address: str | None = None, backend: str = "ray", progress: bool = True,
             worker_cls: type | None = None, worker_kwargs: dict | None = None,
             is_done: Callable[[Any], dict | None] | None = None,
             on_result: Callable[[dict], None] | None = None, results: str | Path | None = None,
             stop: Callable[[], bool] | None = None, workers_per_gpu: int = 1) -> BatchSummary:
    """Runs `jobs` (read_jobs' Jobs, or anything with `.id` for a custom worker_cls) into out_dir; see the module
    doc. Returns the counts; every outcome is also a line of `results` (default out_dir/results.jsonl).
    `on_result(rec)` is called in this process after each job's line is written; `stop()`, asked before each
    job is handed out, ends the batch early when true (e.g. a time budget): the jobs not started are left for
    the next run (summary.not_started), the running ones finish."""
    from tqdm import tqdm

    if backend not in BACKENDS:
        raise PnrError(f"--backend {backend!r}: expected {', '.join(BACKENDS)}")
    if backend == "inline" and workers_per_gpu != 1:
        raise PnrError("--workers-per-gpu needs --backend processes or ray: inline runs one job at a time")
    if backend == "processes" and address is not None:
        raise PnrError("--address joins a Ray cluster: it needs --backend ray (processes runs on this machine)")
    if backend != "inline" and address is None:
        plan_workers(workers, device, None, workers_per_gpu)  # a bad worker setting: an error before any output
    t0 = time.time()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PnrError(f"--out {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    res_path = Path(results) if results is not None else out_dir / RESULTS
    if _repair(res_path) and progress:
        tqdm.write(f"pnr batch: cut a truncated last line off {res_path}")
    ids = [str(j.id) for j in jobs]
    if len(set(ids)) != len(ids):
        raise PnrError("job ids repeat: every job needs its own id")
    if worker_cls is None:
        from pnr.priors.load import PRIORS, detect_kind

        if prior not in PRIORS:
            detect_kind(prior)  # a missing or unusable --prior path: one error now, not one per job
            prior = str(Path(prior).resolve())
        worker_cls, is_done = EditWorker, (is_done or (lambda j: finished_edit(out_dir, j)))
        worker_kwargs = {"out_dir": str(out_dir.resolve()), "prior": prior, **(worker_kwargs or {})}
        # workers may not share this process's folder (a cluster): paths go to them absolute
        jobs = [replace(j, source=str(Path(j.source).resolve())) if isinstance(j, Job) else j for j in jobs]
    worker_kwargs = dict(worker_kwargs or {})
    summary = BatchSummary(results=str(res_path))
    written = read_results(res_path)
    todo = []
    for j in jobs:
        rec = is_done(j) if is_done is not None else None
        if rec is None:
            todo.append(j)
            continue
        summary.skipped += 1
        if written.get(str(j.id), {}).get("status") != "done":  # finished but its line was lost (a kill): add it
            append_result(res_path, rec)
    bar = tqdm(total=len(jobs), initial=summary.skipped, unit="job", desc="pnr batch", disable=not progress,
               dynamic_ncols=True)

    def record(rec: dict) -> None:
        rec = {**rec, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        append_result(res_path, rec)
        if rec.get("status") == "done":
            summary.done += 1
        else:
            summary.failed += 1
            summary.failed_ids.append(rec.get("id"))
            if progress:
                tqdm.write(f"pnr batch: job {rec.get('id')} failed: {rec.get('error')}")
        bar.set_postfix(done=summary.done, failed=summary.failed, refresh=False)
        bar.update(1)
        if on_result is not None:
            on_result(rec)

    try:
        if todo and backend == "inline":
            summary.workers = 1
            dev = "cuda" if plan_workers(1, device, None)[1] else "cpu"
            w = worker_cls(**{**worker_kwargs, "device": dev, "index": 0})
            for k, j in enumerate(todo):
                if stop is not None and stop():
                    summary.not_started = len(todo) - k
                    break
                try:
                    rec = w.run(j)
                except Exception as e:  # noqa: BLE001
                    rec = {"id": str(j.id), "status": "failed", "error": _message(e)}
                record(rec)
        elif todo and backend == "processes":
            _run_processes(todo, worker_cls, worker_kwargs, workers, workers_per_gpu, device, record, summary, stop)
        elif todo:
            _run_ray(todo, worker_cls, worker_kwargs, workers, workers_per_gpu, device, address, record, summary,
                     stop)
    finally:
        bar.close()
    summary.seconds = time.time() - t0
    return summary


# ----------------------------------------------------------------------------------- handing out the jobs


def _dispatch(pool, todo: list, n: int, record: Callable[[dict], None], summary: BatchSummary,
              stop: Callable[[], bool] | None) -> None:
    """Hands `todo` out one job at a time to the pool's n workers (a fast worker takes more jobs) and records each
    outcome, the same way for every backend. A worker that dies fails the job it had and is replaced; one that
    dies twice before finishing any job (e.g. it cannot start) is given up, so a broken setup cannot restart
    forever. `pool`: start(i), submit(i, job), wait() -> (i, "result" | "error" | "died", record | message),
    kill(i) (_RayPool, _ProcessPool)."""
    for i in range(n):
        pool.start(i)
    alive = set(range(n))
    served, strikes = dict.fromkeys(alive, 0), dict.fromkeys(alive, 0)  # jobs done / deaths before any job
    queue = list(todo)
    busy = {}  # worker index -> its job

    def submit(i: int) -> None:
        if queue and stop is not None and stop():
            summary.not_started += len(queue)
            queue.clear()
        if queue and i in alive:
            busy[i] = queue.pop(0)
            pool.submit(i, busy[i])

    for i in range(n):
        submit(i)
    while busy:
        i, kind, val = pool.wait()
        j = busy.pop(i)
        if kind == "result":
            rec = val
            served[i] += 1
        elif kind == "error":
            rec = {"id": str(j.id), "status": "failed", "worker": i, "error": val}
        else:  # the worker process died (killed, out of memory, a crash) or could not start
            why = val if val.startswith("the worker could not start") else \
                f"the worker process died while running this job ({val})"
            rec = {"id": str(j.id), "status": "failed", "worker": i, "error": f"{why}; run the batch again to retry it"}
            pool.kill(i)
            strikes[i] = strikes[i] + 1 if served[i] == 0 else 1
            if strikes[i] < 2:
                pool.start(i)  # a fresh worker takes the next jobs
                served[i] = 0
            else:
                alive.discard(i)
                if not alive:
                    for q in queue:
                        record({"id": str(q.id), "status": "failed",
                                "error": f"not run: no worker could start or keep running ({val})"})
                    queue.clear()
        record(rec)
        submit(i)


class _RayPool:
    """Ray actors, one per worker index; a job is a `run` task on its worker's actor."""

    def __init__(self, ray, worker_cls: type, options: dict, kwargs: dict):
        self.ray, self._cls, self._options, self._kwargs = ray, ray.remote(worker_cls), options, kwargs
        self._actors, self._inflight = {}, {}  # index -> actor, ObjectRef -> index

    def start(self, i: int) -> None:
        self._actors[i] = self._cls.options(**self._options).remote(**self._kwargs, index=i)

    def submit(self, i: int, job) -> None:
        self._inflight[self._actors[i].run.remote(job)] = i

    def wait(self) -> tuple[int, str, Any]:
        ray = self.ray
        ready, _ = ray.wait(list(self._inflight), num_returns=1)
        i = self._inflight.pop(ready[0])
        try:
            return i, "result", ray.get(ready[0])
        except ray.exceptions.RayActorError as e:
            return i, "died", _death_message(e)
        except ray.exceptions.RayTaskError as e:
            return i, "error", _message(e.cause or e)

    def kill(self, i: int) -> None:
        try:
            self.ray.kill(self._actors.pop(i))
        except Exception:  # noqa: BLE001 - already gone
            pass


def _run_ray(todo, worker_cls, worker_kwargs, workers, workers_per_gpu, device, address, record, summary,
             stop=None) -> None:
    # Ray is started first when joining a cluster: its GPUs decide the number of workers
    ray, own = _ray_init(address, 0, False) if address else (None, False)
    try:
        n, gpu = plan_workers(workers, device, address, workers_per_gpu)
        if not address:
            ray, own = _ray_init(None, n, gpu)
        n = min(n, len(todo))
        summary.workers = n
        threads = None if address else worker_threads(n)  # a cluster's nodes: their own cores
        extra = {} if threads is None or "threads" not in _init_params(worker_cls) else {"threads": threads}
        # K actors share a GPU: each asks for 1/K of one, and Ray pins it there (CUDA_VISIBLE_DEVICES)
        opts = {"num_gpus": 1.0 / workers_per_gpu, "num_cpus": 1} if gpu else {"num_cpus": 1}
        kwargs = {**worker_kwargs, **extra, "device": "cuda" if gpu else "cpu"}
        _dispatch(_RayPool(ray, worker_cls, opts, kwargs), todo, n, record, summary, stop)
    finally:
        if own:
            ray.shutdown()


def _death_message(e: BaseException) -> str:
    """What a RayActorError says, in one line: the exception of a worker that could not start, else its first
    line (e.g. 'The actor died unexpectedly before finishing this task')."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    lines = [t.strip() for t in text.splitlines() if t.strip()]
    if not lines:
        return type(e).__name__
    if "creation task" in lines[0]:
        errs = [t for t in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit): ", t)]
        if errs:
            return f"the worker could not start: {errs[-1][:400]}"
    return lines[0][:300]


def _init_params(cls) -> set:
    import inspect

    try:
        return set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return set()


# --------------------------------------------------------------------------------- the processes backend


def _run_processes(todo, worker_cls, worker_kwargs, workers, workers_per_gpu, device, record, summary,
                   stop=None) -> None:
    """Local worker processes, no Ray (machines where it cannot be installed): workers_per_gpu of them per GPU,
    or `workers` on the CPU."""
    n, gpu = plan_workers(workers, device, None, workers_per_gpu)
    n = min(n, len(todo))
    gpus = _gpu_count(device, None) if gpu else 0
    summary.workers = n
    pool = _ProcessPool(worker_cls, worker_kwargs, [worker_device(i, workers_per_gpu, gpus) for i in range(n)],
                        worker_threads(n))
    try:
        _dispatch(pool, todo, n, record, summary, stop)
    finally:
        pool.close()


class _ProcessPool:
    """Worker processes started with 'spawn' (CUDA cannot run in a forked child), each with a pipe of its own:
    one job in, its outcome out, so the driver knows which job a dead worker had (its sentinel fires)."""

    def __init__(self, worker_cls: type, worker_kwargs: dict, devices: list[str], threads: int):
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._cls, self._kwargs, self._devices, self._threads = worker_cls, worker_kwargs, devices, threads
        self._procs, self._conns, self._busy = {}, {}, set()

    def start(self, i: int) -> None:
        ours, theirs = self._ctx.Pipe()
        p = self._ctx.Process(target=_process_main, name=f"pnr-batch-worker-{i}",
                              args=(theirs, self._cls, self._kwargs, self._devices[i], i, self._threads))
        p.start()
        theirs.close()  # only the child holds its end: its death is our EOF
        self._procs[i], self._conns[i] = p, ours

    def submit(self, i: int, job) -> None:
        self._busy.add(i)
        try:
            self._conns[i].send(job)
        except (BrokenPipeError, ConnectionResetError):  # already dead: wait() sees its sentinel
            pass

    def wait(self) -> tuple[int, str, Any]:
        from multiprocessing.connection import wait

        by_obj = {}
        for i in self._busy:
            by_obj[self._conns[i]] = by_obj[self._procs[i].sentinel] = i
        i = by_obj[wait(list(by_obj))[0]]
        self._busy.discard(i)
        conn = self._conns[i]
        try:
            if conn.poll():  # an answer sent just before the process exited still counts
                kind, val = conn.recv()
                return (i, "died", f"the worker could not start: {val}") if kind == "init" else (i, kind, val)
        except (EOFError, OSError):
            pass
        return i, "died", self._exit(i)

    def _exit(self, i: int) -> str:
        p = self._procs[i]
        p.join(timeout=10)
        code = p.exitcode
        if code is None:
            return "it closed its pipe but kept running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def kill(self, i: int) -> None:
        p = self._procs.pop(i)
        if p.is_alive():
            p.kill()
        p.join(timeout=10)
        self._conns.pop(i).close()
        self._busy.discard(i)

    def close(self) -> None:
        """Idle workers are asked to stop; busy ones (the driver is leaving mid-batch, e.g. Ctrl-C) are killed."""
        for i, conn in self._conns.items():
            if i not in self._busy:
                try:
                    conn.send(None)
                except OSError:
                    pass
        for i in list(self._procs):
            p = self._procs[i]
            if i in self._busy:
                p.kill()
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
            self._procs.pop(i)
            self._conns.pop(i).close()
        self._busy.clear()


def _visible_gpu(gpu: int, visible: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for a worker on GPU `gpu` of the driver's GPUs: the driver's own list (e.g. "2,3")
    indexed, so a restricted driver keeps its workers inside its GPUs."""
    ids = [s.strip() for s in (visible or "").split(",") if s.strip()]
    return ids[gpu] if gpu < len(ids) else str(gpu)


def _pin_device(device: str) -> str:
    """Makes "cuda:N" this process's only GPU before CUDA starts (then "cuda" means it, whatever the worker's code
    says); torch.cuda.set_device if CUDA already started. -> the device name the worker gets."""
    if not device.startswith("cuda:"):
        return device
    gpu = int(device.split(":", 1)[1])
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.set_device(gpu)
        return device
    os.environ["CUDA_VISIBLE_DEVICES"] = _visible_gpu(gpu, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return "cuda"


def _exc_line(e: BaseException) -> str:
    mod = type(e).__module__
    return f"{'' if mod == 'builtins' else mod + '.'}{type(e).__name__}: {e}"


def _process_main(conn, worker_cls: type, worker_kwargs: dict, device: str, index: int, threads: int) -> None:
    """A worker process: pins its GPU, builds its worker once (the prior loads once), then runs the jobs it is
    sent until None or the driver's end (EOF). Ctrl-C is the driver's to handle: it kills busy workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    device = _pin_device(device)
    import torch

    torch.set_num_threads(threads)
    kwargs = dict(worker_kwargs)
    if "threads" in _init_params(worker_cls):
        kwargs.setdefault("threads", threads)
    try:
        worker = worker_cls(**kwargs, device=device, index=index)
    except BaseException as e:  # noqa: BLE001 - reported as the job's error, as Ray reports a failed actor
        conn.send(("init", _exc_line(e)[:400]))
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if job is None:
            return
        try:
            msg = ("result", worker.run(job))
        except Exception as e:  # noqa: BLE001 - a job's failure is its result
            msg = ("error", _message(e))
        try:
            conn.send(msg)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as e:  # noqa: BLE001 - a result that does not pickle
            conn.send(("error", f"its result could not be sent back: {_message(e)}"))
