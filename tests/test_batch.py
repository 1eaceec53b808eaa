"""pnr batch (pnr/batch.py): JOBS.jsonl checks, results.jsonl appends, and real batches of tiny edits — on Ray
with 2 CPU workers (one local Ray instance for the module), on the processes backend (spawned local workers) and
inline; the K-workers-per-GPU plan and the CLI's worker flags without a GPU."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pnr.batch import (Job, _pin_device, _repair, _visible_gpu, append_result, plan_workers, read_jobs, read_results,
                       run_jobs, worker_device, worker_threads)
from pnr.data.domain.grammar import vocabulary
from pnr.errors import PnrError
from pnr.field.checkpoint import save_checkpoint
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.priors.builtin.model import PriorConfig
from pnr.priors.builtin.prior import BuiltinPrior, save_prior

# a few steps of a tiny field: about a second per edit on the CPU
FAST = dict(preset="quick", eta=0.4, search_steps=2, edit_steps=2, revise_steps=1, res_low=8, res_high=8,
            num_samples=8, turntable_frames=0, lambda_p=0)
PROMPTS = ["in blue", "in green", "in white", "striped", "in yellow", "in purpel"]  # "purpel": fails at run time


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    save_checkpoint(d / "src", Field(FieldConfig.tiny(), seed=1), None, {"caption": "a red mug"})
    prior = save_prior(BuiltinPrior(PriorConfig.tiny(vocabulary())), d / "prior.safetensors")
    return d, str(prior)


def write_jobs(path, src, prompts=PROMPTS, **extra):
    with open(path, "w") as f:
        f.writelines(json.dumps({"id": f"j{i}", "source": str(src), "prompt": p, **FAST, **extra}) + "\n" for i, p in enumerate(prompts))
    return path


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# ------------------------------------------------------------------------------------------- JOBS.jsonl


@pytest.mark.parametrize("line,msg", [
    ('{"id": "a", "source": "SRC", "prompt": "in blue"', "not JSON"),
    ('["a"]', "expected a JSON object"),
    ('{"id": "a", "source": "SRC"}', "missing 'prompt'"),
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "edit_step": 3}', "unknown key 'edit_step' (did you mean "
                                                                          "'edit_steps'?)"),
    ('{"id": "a/b", "source": "SRC", "prompt": "in blue"}', "id 'a/b' must be a folder name"),
    ('{"id": "a", "source": "SRC", "prompt": "  "}', "prompt '  ' must be a non-empty string"),
    ('{"id": "a", "source": "nowhere", "prompt": "in blue"}', "source 'nowhere': no such checkpoint"),
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "edit_steps": "ten"}', "edit_steps 'ten' must be an integer"),
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "t_start": [0.5]}', "t_start [0.5] must be a list of two"),
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "preset": "fast"}', "preset 'fast' is not one of"),
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "seed": 1.5}', "seed 1.5 must be an integer"),
    # values EditConfig refuses, named by key
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "views": -3}', "views must be >= 0"),
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "eta": 2}', "eta must be in [0, 1]"),
    ('{"id": "a", "source": "SRC", "prompt": "in blue", "method": "dreamfusion"}', "dreamfusion"),
])
def test_every_line_is_checked_first(setup, tmp_path, line, msg):
    d, _ = setup
    good = json.dumps({"id": "ok", "source": str(d / "src"), "prompt": "in blue"})
    p = tmp_path / "jobs.jsonl"
    p.write_text(good + "\n\n" + line.replace("SRC", str(d / "src")) + "\n")
    with pytest.raises(PnrError) as e:
        read_jobs(p)
    assert str(e.value).startswith("jobs.jsonl line 3: ") and msg in str(e.value), str(e.value)


def test_jobs_read_and_ids_unique(setup, tmp_path):
    d, _ = setup
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", d / "src", ["in blue", "in green"]))
    assert [j.id for j in jobs] == ["j0", "j1"] and [j.line for j in jobs] == [1, 2]
    cfg = jobs[0].config()
    assert (cfg.edit_steps, cfg.eta, cfg.turntable_frames, cfg.res_low, cfg.search_steps) == (2, 0.4, 0, 8, 2)
    with open(tmp_path / "jobs.jsonl", "a") as f:
        f.write(json.dumps({"id": "j0", "source": str(d / "src"), "prompt": "in red"}) + "\n")
    with pytest.raises(PnrError, match="line 3: id 'j0' is used by line 1 too"):
        read_jobs(tmp_path / "jobs.jsonl")


def test_results_survive_a_truncated_last_line(tmp_path):
    p = tmp_path / "results.jsonl"
    append_result(p, {"id": "a", "status": "failed", "error": "x"})
    append_result(p, {"id": "a", "status": "done"})
    with open(p, "ab") as f:
        f.write(b'{"id": "b", "stat')  # a writer killed mid-line
    assert read_results(p) == {"a": {"id": "a", "status": "done"}}  # the last line per id wins
    assert _repair(p) and not _repair(p)
    append_result(p, {"id": "b", "status": "done"})
    lines = p.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(t) for t in lines)


# ------------------------------------------------------------------------------------------------ runs


def _done_ids(res):
    return {i for i, r in read_results(res).items() if r["status"] == "done"}


def test_ray_two_workers_a_failing_job_a_dead_worker_and_the_rerun(setup, tmp_path, ray_local):
    """2 Ray CPU workers share 6 jobs; "in purpel" (j5) raises (a PromptError) and is recorded with its message; the
    worker that finishes the first job is then killed (SIGKILL), so the job it was handed next fails as 'worker
    process died' and a fresh worker takes the rest. A rerun skips the finished jobs and runs only the others."""
    d, prior = setup
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", d / "src"))
    out = tmp_path / "out"
    killed = []

    def kill_first(rec):
        if rec["status"] == "done" and not killed:
            killed.append(rec["pid"])
            os.kill(rec["pid"], signal.SIGKILL)

    s = run_jobs(jobs, out, prior=prior, workers=2, progress=False, on_result=kill_first)
    recs = [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and s.workers == 2 and (s.done, s.skipped, s.failed) == (4, 0, 2)
    by_id = {r["id"]: r for r in recs}
    assert by_id["j5"]["status"] == "failed" and "'purpel' (close: purple)" in by_id["j5"]["error"]
    died = [r for r in recs if "worker process died" in (r.get("error") or "")]
    assert [r["id"] for r in died] == ["j2"]  # the third job: the first one handed to the killed worker
    done = [r for r in recs if r["status"] == "done"]
    assert len({r["pid"] for r in done}) >= 2 and {0, 1} <= {r["worker"] for r in done}  # both workers edited
    assert sum(r["pid"] == killed[0] for r in done) == 1  # the killed worker edited nothing after its first job
    for r in done:
        rec = json.loads((out / r["id"] / "edit.json").read_text())
        assert rec["finished"] and rec["conditioning_text"] == r["conditioning_text"]
        assert rec["batch"]["job"]["prompt"] == rec["prompt"] and rec["config"]["edit_steps"] == 2
    assert by_id["j0"]["conditioning_text"] == "a blue mug" and by_id["j3"]["conditioning_text"] == "a red striped mug"
    mtimes = {r["id"]: (out / r["id"] / "edit.json").stat().st_mtime_ns for r in done}

    s2 = run_jobs(jobs, out, prior=prior, workers=1, progress=False)  # the restart (1 worker: one start-up less)
    assert (s2.done, s2.skipped, s2.failed) == (1, 4, 1) and s2.failed_ids == ["j5"]
    assert _done_ids(out / "results.jsonl") == {f"j{i}" for i in range(5)}
    assert {i: (out / i / "edit.json").stat().st_mtime_ns for i in mtimes} == mtimes  # finished ones not rerun
    assert len((out / "results.jsonl").read_text().splitlines()) == 8  # 6 + the two jobs run again


_DRIVER = """
import sys
from pnr.batch import read_jobs, run_jobs
s = run_jobs(read_jobs(sys.argv[1]), sys.argv[2], prior=sys.argv[3], backend="inline", progress=False)
print(s.line())
"""


def test_killed_batch_restarts_with_the_rest(setup, tmp_path):
    """A batch process killed (SIGKILL, its whole process group) after its first finished job: the rerun skips
    what finished, recovers the line of a job whose edit.json was written but whose result line was lost,
    tolerates a half-written last line, and finishes only the rest."""
    d, prior = setup
    prompts = PROMPTS[:5]  # 5 jobs that all succeed
    jobs_path = write_jobs(tmp_path / "jobs.jsonl", d / "src", prompts)
    out = tmp_path / "out"
    res = out / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(jobs_path), str(out), prior],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while not _done_ids(res) and proc.poll() is None and time.time() - t0 < 60:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _done_ids(res)
    assert 1 <= len(before) < 5, proc.stderr.read().decode()[-2000:]
    # a kill between edit.json and its result line, and one in the middle of a write
    lost = min(before)
    lines = res.read_text().splitlines()
    res.write_text("".join(t + "\n" for t in lines if json.loads(t)["id"] != lost) + '{"id": "j4", "st')
    s = run_jobs(read_jobs(jobs_path), out, prior=prior, backend="inline", progress=False)
    assert s.skipped == len(before) and s.done == 5 - len(before) and s.failed == 0
    recs = read_results(res)
    assert set(recs) == {f"j{i}" for i in range(5)} and all(r["status"] == "done" for r in recs.values())
    assert recs[lost].get("recovered_from") == "edit.json"
    assert all(json.loads(t) for t in res.read_text().splitlines())  # the half line was cut off
    assert len(res.read_text().splitlines()) == 5


def test_cli_batch(setup, tmp_path, capsys):
    """`pnr batch` (inline backend: no Ray start-up here): summary line, exit 1 when a job failed, and a bad
    JOBS.jsonl is a one-line error (exit 2) before any job runs."""
    from pnr.cli import main

    d, prior = setup
    jobs = write_jobs(tmp_path / "jobs.jsonl", d / "src", ["in blue", "in purpel"])
    rc = main(["batch", str(jobs), "--out", str(tmp_path / "out"), "--prior", prior, "--backend", "inline",
               "--quiet"])
    outp = capsys.readouterr().out
    assert rc == 1 and "1 done, 0 skipped, 1 failed" in outp and "jobs/min" in outp and "failed: j1" in outp
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "source": str(d / "src"), "prompt": "in blue", "edit_steps": -1}) + "\n")
    rc = main(["batch", str(bad), "--out", str(tmp_path / "out2"), "--prior", prior, "--backend", "inline"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == "pnr batch: error: bad.jsonl line 1: edit_steps must be >= 0, got -1"
    assert not (tmp_path / "out2").exists()


def test_finished_folder_of_another_prompt_is_refused(setup, tmp_path):
    d, prior = setup
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", d / "src", ["in blue"]))
    run_jobs(jobs, tmp_path / "out", prior=prior, backend="inline", progress=False)
    rec = json.loads((tmp_path / "out" / "j0" / "edit.json").read_text())
    assert rec["source"]["kind"] == "checkpoint" and rec["source"]["caption"] == "a red mug" and rec["prior"] == prior
    other = [Job(**{**jobs[0].__dict__, "prompt": "in green"})]
    with pytest.raises(PnrError, match="holds a finished edit of 'in blue'"):
        run_jobs(other, tmp_path / "out", prior=prior, backend="inline", progress=False)


class Squares:
    """A custom worker (the benchmark's way in): built once, many jobs; job 3 raises."""

    def __init__(self, base, device, index):
        self.base, self.built = base, getattr(Squares, "built", 0) + 1
        Squares.built = self.built

    def run(self, job):
        if job.id == "3":
            raise RuntimeError("no threes")
        return {"id": job.id, "status": "done", "value": self.base + int(job.id) ** 2, "built": self.built}


def test_custom_worker_inline(tmp_path):
    from types import SimpleNamespace

    jobs = [SimpleNamespace(id=str(i)) for i in range(5)]
    seen = []
    s = run_jobs(jobs, tmp_path, backend="inline", worker_cls=Squares, worker_kwargs={"base": 100},
                 is_done=lambda j: {"id": j.id, "status": "done"} if j.id == "0" else None,
                 on_result=seen.append, progress=False)
    assert (s.done, s.skipped, s.failed) == (3, 1, 1)
    assert [r["value"] for r in seen if r["status"] == "done"] == [101, 104, 116]
    assert {r["built"] for r in seen if r["status"] == "done"} == {1}  # one worker, built once
    recs = read_results(tmp_path / "results.jsonl")
    assert recs["3"] == {**recs["3"], "status": "failed", "error": "RuntimeError: no threes"}
    assert recs["0"] == {"id": "0", "status": "done"}  # a skipped job with no line gets one

    # stop() (e.g. a time budget) ends the batch before the next job; those are left for a later run
    s = run_jobs([SimpleNamespace(id=str(i)) for i in range(5, 9)], tmp_path, backend="inline", worker_cls=Squares,
                 worker_kwargs={"base": 0}, stop=lambda: len(read_results(tmp_path / "results.jsonl")) >= 7,
                 progress=False)
    assert (s.done, s.not_started) == (2, 2) and "2 not started" in s.line()


def test_ray_worker_that_cannot_start(setup, tmp_path, ray_local):
    """A prior that looks right but does not load fails in each worker's start: the jobs are recorded as failed
    with the loader's message, the worker is restarted once, then given up (no endless restarts)."""
    d, _ = setup
    bad = tmp_path / "prior"
    bad.mkdir()
    (bad / "prior.safetensors").write_bytes(b"not a safetensors file")
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", d / "src", PROMPTS[:3]))
    s = run_jobs(jobs, tmp_path / "out", prior=str(bad), workers=1, progress=False)
    assert (s.done, s.failed) == (0, 3)
    recs = read_results(tmp_path / "out" / "results.jsonl")
    assert all("the worker could not start: pnr.errors.CheckpointError: " in r["error"] and "not a readable "
               "safetensors prior" in r["error"] for r in recs.values())
    assert sum(r["error"].startswith("not run: no worker could start") for r in recs.values()) == 1


def test_readme_example_jobs_are_valid(tmp_path, monkeypatch):
    """The README's example JOBS.jsonl passes the checks (its sources exist from the repository root)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text().split("## Batch many edits", 1)[1]
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    (tmp_path / "jobs.jsonl").write_text(block)
    monkeypatch.chdir(root)
    jobs = read_jobs(tmp_path / "jobs.jsonl")
    assert [j.id for j in jobs] == ["mug_blue", "mug_dots", "mug_sds"]
    assert jobs[2].config().method == "sds" and jobs[2].config().edit_steps == 40 and jobs[1].seed == 1


# ------------------------------------------------------------------------- processes backend, K per GPU


def _outcomes(path):
    return {i: (r["status"], r.get("conditioning_text"), r.get("eta"), sorted(r)) for i, r in read_results(path).items()}


def test_processes_two_workers_match_inline_and_resume(setup, tmp_path):
    """2 spawned workers share 4 jobs ("in purpel", j3, raises and is recorded without stopping the others) and
    write the records inline writes (same ids, status, text, η, keys); a rerun skips the 3 finished jobs and
    runs only j3 again."""
    d, prior = setup
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", d / "src", PROMPTS[:3] + PROMPTS[-1:]))
    s_in = run_jobs(jobs, tmp_path / "inline", prior=prior, backend="inline", progress=False)
    s = run_jobs(jobs, tmp_path / "proc", prior=prior, backend="processes", workers=2, progress=False)
    assert (s.done, s.skipped, s.failed, s.workers) == (3, 0, 1, 2) == (s_in.done, 0, s_in.failed, 2)
    res = tmp_path / "proc" / "results.jsonl"
    assert _outcomes(res) == _outcomes(tmp_path / "inline" / "results.jsonl")
    recs = read_results(res)
    assert "'purpel' (close: purple)" in recs["j3"]["error"]
    done = [r for r in recs.values() if r["status"] == "done"]
    assert {r["worker"] for r in done} == {0, 1} and os.getpid() not in {r["pid"] for r in done}  # both worked
    assert all(json.loads((tmp_path / "proc" / r["id"] / "edit.json").read_text())["finished"] for r in done)
    mtimes = {r["id"]: (tmp_path / "proc" / r["id"] / "edit.json").stat().st_mtime_ns for r in done}

    s2 = run_jobs(jobs, tmp_path / "proc", prior=prior, backend="processes", workers=2, progress=False)
    assert (s2.done, s2.skipped, s2.failed, s2.workers) == (0, 3, 1, 1) and s2.failed_ids == ["j3"]
    assert {i: (tmp_path / "proc" / i / "edit.json").stat().st_mtime_ns for i in mtimes} == mtimes
    assert len(res.read_text().splitlines()) == 5  # 4 + j3 again


class Fragile:
    """A cheap custom worker for the processes backend: job "2" kills its process, job "3" raises; `broken`
    makes the worker fail to start. Records what the worker process was given (device, GPU, threads)."""

    def __init__(self, device, index, broken=False):
        if broken:
            raise RuntimeError("no prior here")
        self.device = device

    def run(self, job):
        import torch

        if job.id == "2":
            os.kill(os.getpid(), signal.SIGKILL)
        if job.id == "3":
            raise RuntimeError("no threes")
        return {"id": job.id, "status": "done", "pid": os.getpid(), "device": self.device,
                "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": torch.get_num_threads()}


def _ids(n):
    from types import SimpleNamespace

    return [SimpleNamespace(id=str(i)) for i in range(n)]


def test_processes_dead_worker_is_replaced(tmp_path):
    """One worker: job 2 kills it (SIGKILL), so job 2 is failed as a dead worker's and a fresh process runs the
    rest; job 3's exception is its own failure only."""
    s = run_jobs(_ids(6), tmp_path, backend="processes", workers=1, worker_cls=Fragile, progress=False)
    assert (s.done, s.failed, s.failed_ids) == (4, 2, ["2", "3"])
    recs = read_results(tmp_path / "results.jsonl")
    assert recs["2"]["error"] == ("the worker process died while running this job (killed by SIGKILL); run the "
                                  "batch again to retry it")
    assert recs["3"]["error"] == "RuntimeError: no threes"
    assert recs["0"]["pid"] == recs["1"]["pid"] != recs["4"]["pid"] == recs["5"]["pid"]  # replaced once


def test_processes_worker_that_cannot_start(tmp_path):
    """A worker whose start raises: its jobs fail with that message, it is restarted once, then given up."""
    s = run_jobs(_ids(3), tmp_path, backend="processes", workers=1, worker_cls=Fragile,
                 worker_kwargs={"broken": True}, progress=False)
    assert (s.done, s.failed) == (0, 3)
    errs = [r["error"] for r in read_results(tmp_path / "results.jsonl").values()]
    assert sum(e.startswith("the worker could not start: RuntimeError: no prior here") for e in errs) == 2
    assert sum(e.startswith("not run: no worker could start or keep running") for e in errs) == 1


def test_processes_k_workers_share_a_gpu(tmp_path, monkeypatch):
    """Two workers on one (pretended) GPU: both are pinned to it through CUDA_VISIBLE_DEVICES (the driver's own
    list indexed: "3" here) and told "cuda", and share the cores' threads. No CUDA is touched."""
    import pnr.batch

    monkeypatch.setattr(pnr.batch, "_gpu_count", lambda device, address: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    s = run_jobs(_ids(2), tmp_path, backend="processes", workers_per_gpu=2, worker_cls=Fragile, progress=False)
    recs = read_results(tmp_path / "results.jsonl")
    assert s.workers == 2 and recs["0"]["pid"] != recs["1"]["pid"]
    assert {(r["device"], r["visible"], r["threads"]) for r in recs.values()} == {("cuda", "3", worker_threads(2))}


def test_worker_device_plan_threads():
    """Worker i on GPU i // K; the plan's worker count, and its errors (K with no GPU is refused, not ignored)."""
    assert [worker_device(i, 4, 2) for i in range(8)] == ["cuda:0"] * 4 + ["cuda:1"] * 4
    assert [worker_device(i, 1, 3) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:2"]
    assert worker_device(5, 16, 0) == "cpu"
    for bad in [(8, 4, 2), (-1, 1, 1), (0, 0, 1)]:
        with pytest.raises(ValueError):
            worker_device(*bad)
    assert (worker_threads(16, 16), worker_threads(4, 16), worker_threads(32, 16), worker_threads(3, 2)) == (1, 4, 1, 1)
    assert (_visible_gpu(1, "2,3"), _visible_gpu(0, None), _visible_gpu(2, "")) == ("3", "0", "2")


def test_plan_workers_per_gpu(monkeypatch):
    import pnr.batch

    monkeypatch.setattr(pnr.batch, "_gpu_count", lambda device, address: 0 if device == "cpu" else 2)
    assert plan_workers(None, "auto", None, 8) == (16, True)
    assert plan_workers(5, "auto", None, 8) == (5, True)  # --workers caps the total
    assert plan_workers(None, "auto", None) == (2, True)
    assert plan_workers(3, "cpu", None) == (3, False)
    with pytest.raises(PnrError, match=r"--workers-per-gpu 4 shares GPUs, but --device cpu; on the CPU use --workers"):
        plan_workers(None, "cpu", None, 4)
    monkeypatch.setattr(pnr.batch, "_gpu_count", lambda device, address: 0)
    with pytest.raises(PnrError, match="but no CUDA GPU here"):
        plan_workers(2, "auto", None, 2)
    with pytest.raises(PnrError, match="must be an integer >= 1"):
        plan_workers(None, "auto", None, 0)


def test_pin_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert _pin_device("cpu") == "cpu" and os.environ["CUDA_VISIBLE_DEVICES"] == "4,5"
    assert _pin_device("cuda:1") == "cuda" and os.environ["CUDA_VISIBLE_DEVICES"] == "5"


def test_cli_worker_flags(setup, tmp_path, capsys, monkeypatch):
    """--backend processes and --workers-per-gpu reach run_jobs; bad values are one-line errors (exit 2) before
    any output folder is made."""
    import pnr.batch
    from pnr.cli import main

    d, prior = setup
    jobs = write_jobs(tmp_path / "jobs.jsonl", d / "src", ["in blue"])
    out = tmp_path / "out"
    for argv, msg in [
        (["--workers-per-gpu", "0"], "argument --workers-per-gpu: expected a whole number >= 1, got 0"),
        (["--workers", "two"], "argument --workers: expected a whole number >= 1, got 'two'"),
        (["--backend", "threads"], "argument --backend: invalid choice: 'threads'"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["batch", str(jobs), "--out", str(out), *argv])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    for argv, msg in [
        (["--backend", "processes", "--workers-per-gpu", "4", "--device", "cpu"],
         "--workers-per-gpu 4 shares GPUs, but --device cpu; on the CPU use --workers N"),
        (["--backend", "inline", "--workers-per-gpu", "2"], "--workers-per-gpu needs --backend processes or ray"),
        (["--backend", "processes", "--address", "auto"], "--address joins a Ray cluster: it needs --backend ray"),
    ]:
        assert main(["batch", str(jobs), "--out", str(out), "--prior", prior, *argv]) == 2
        assert capsys.readouterr().err.startswith(f"pnr batch: error: {msg}")
    assert not out.exists()
    seen = {}
    monkeypatch.setattr(pnr.batch, "run_jobs", lambda jobs, out, **kw: seen.update(kw) or pnr.batch.BatchSummary())
    assert main(["batch", str(jobs), "--out", str(out), "--backend", "processes", "--workers-per-gpu", "12"]) == 0
    assert (seen["backend"], seen["workers_per_gpu"], seen["workers"]) == ("processes", 12, None)
