"""`quality run --workers K` (pnr/bench/quality/worker.py): the benchmark's edits on a pnr.batch pool of spawned
worker processes write the records a sharded run writes and resume like it; a unit that raises is a failure that
leaves the other units (and its own finished jobs) in place. Smaller still than test_quality.py's tiny runs."""

import json
import math
from pathlib import Path

import pytest

import pnr.bench.quality as Q
from pnr.bench.quality.worker import QualityWorker, batch_log

from .test_quality import _lines, _run_args

VOLATILE = ("seconds", "finished_at", "shard", "worker")  # timing and where a job ran: differ between runs


# smaller still than test_quality.py's settings (later options win): 2 edits, 2+2+1 steps, a 4-step fit
SMALL = ("--limit", "2", "--no-warm-up", "--thumb-edits", "0", "--fit-steps", "4", "--fit-views", "4", "--fit-res",
         "16", "--fit-rays", "128", "--fit-samples", "16", "--search-steps", "2", "--edit-steps", "2",
         "--revise-steps", "1", "--set", "num_samples=8", "--eval-views", "2", "--eval-samples", "8")


def _args(out: Path, prior: Path, methods: str, *extra: str) -> list[str]:
    return _run_args(out, prior, methods, *SMALL, *extra)


@pytest.fixture(scope="module")
def source_cache(tmp_path_factory):
    """One fit per edit for the tests that do not compare against a run without the cache."""
    return str(tmp_path_factory.mktemp("source_cache"))


def _stable(rec: dict) -> dict:
    r = {k: v for k, v in rec.items() if k not in VOLATILE}
    r["fit"] = {k: v for k, v in r["fit"].items() if k != "seconds"}
    return r


def _assert_same(a, b, where=""):
    """Equal records; floats within a tight tolerance (CPU runs with one thread are deterministic)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (where, a, b)
    else:
        assert a == b, (where, a, b)


def _by_key(out: Path) -> dict:
    return {Q.key_of(r): r for r in Q.read_results(out).values()}


def test_two_workers_write_what_a_sharded_run_writes_and_resume(tmp_path, tiny_prior, capsys):
    shards = tmp_path / "shards" / "q.jsonl"
    for i in (0, 1):
        assert Q.main(_args(shards, tiny_prior, "pnr", "--shard", f"{i}/2")) == 0
    pool = tmp_path / "pool" / "q.jsonl"
    assert Q.main(_args(pool, tiny_prior, "pnr", "--workers", "2")) == 0
    assert "finished 2 jobs" in capsys.readouterr().out and Q.result_files(pool) == [pool]

    a, b = _by_key(shards), _by_key(pool)
    edits = [e.id for e in Q.select_edits("test")[:2]]
    assert set(a) == set(b) == {(e, v, 0) for e in edits for v in ("pnr", "pnr_norevise")}
    for k in a:
        assert b[k]["shard"] is None and b[k]["worker"] in (0, 1) and b[k]["metrics"]["a_lpips"] > 0
        _assert_same(_stable(a[k]), _stable(b[k]), str(k))
    log = [json.loads(x) for x in _lines(batch_log(pool, None))]  # pnr.batch's line per unit (edit)
    assert sorted(r["id"] for r in log) == sorted(edits) and all(r["status"] == "done" for r in log)
    assert {r["worker"] for r in log} == {0, 1} and all(r["jobs_run"] == 1 and r["jobs_left"] == 0 for r in log)

    # resume: every key is done, no worker starts and the file is left as it is
    before = pool.read_bytes()
    assert Q.main(_args(pool, tiny_prior, "pnr", "--workers", "2")) == 0
    assert pool.read_bytes() == before and "0 jobs to run" in capsys.readouterr().out


class FailingWorker(QualityWorker):
    """Raises in the sds job of the first test edit (after its pnr job finished)."""

    def run_job(self, src, job):
        if job.edit_id == Q.select_edits("test")[0].id and job.variant == "sds":
            raise RuntimeError("boom")
        return super().run_job(src, job)


def test_a_unit_that_raises_is_a_failure_and_the_others_finish(tmp_path, tiny_prior, source_cache, capsys):
    out = tmp_path / "q.jsonl"
    args = _args(out, tiny_prior, "pnr,sds", "--source-cache", source_cache)
    # inline: the pool's hand-out and records in this process (the processes backend is the test above)
    a = Q.RunConfig.from_args(Q.build_parser().parse_args([*args, "--backend", "inline"]))
    assert Q.cmd_run(a, worker_cls=FailingWorker) == 1  # a failed unit: exit status 1
    assert "1 edits failed" in capsys.readouterr().out
    first, second = (e.id for e in Q.select_edits("test")[:2])
    keys = set(_by_key(out))
    assert keys == {(first, "pnr_norevise", 0), (first, "pnr", 0),  # the failed unit's finished job is kept
                    (second, "pnr_norevise", 0), (second, "pnr", 0), (second, "sds", 0)}
    log = {r["id"]: r for r in map(json.loads, _lines(batch_log(out, None)))}
    assert log[first]["status"] == "failed" and log[first]["error"] == "RuntimeError: boom"
    assert log[first]["jobs_run"] == 1 and log[first]["jobs_left"] == 1 and "boom" in log[first]["traceback"]
    assert log[second]["status"] == "done" and log[second]["jobs_run"] == 2

    # the next run (here without a pool) runs only the job that failed; the finished unit is skipped
    n = len(_lines(out))
    assert Q.main(args) == 0
    text = capsys.readouterr().out
    assert "1 jobs to run over 1 source objects" in text and "all done" in text
    recs = [json.loads(x) for x in _lines(out)]
    assert len(recs) == n + 1 and Q.key_of(recs[-1]) == (first, "sds", 0) and "worker" not in recs[-1]


@pytest.mark.parametrize("flags,msg", [(["--workers", "0"], "--workers must be >= 1"),
                                       (["--workers-per-gpu", "2"], "--workers-per-gpu 2 shares GPUs")])
def test_bad_worker_settings_are_errors(tmp_path, tiny_prior, flags, msg):
    from pnr.errors import PnrError

    with pytest.raises((SystemExit, PnrError), match=msg):
        Q.main(_args(tmp_path / "q.jsonl", tiny_prior, "sds", *flags))


def test_max_minutes_stops_the_pool_before_any_worker_starts(tmp_path, tiny_prior, capsys):
    out = tmp_path / "q.jsonl"
    assert Q.main(_args(out, tiny_prior, "sds", "--workers", "2", "--max-minutes", "0.001")) == 0
    assert "2 left (stopped before --max-minutes 0.001)" in capsys.readouterr().out
    assert not out.exists() or out.read_text() == ""


def test_quality_script_can_be_reimported_by_spawned_workers():
    """The processes backend spawns workers that import the main script again as `__mp_main__`: the script must
    not run the CLI then (it did, and `--workers 16` failed on the H200 with multiprocessing's bootstrapping error)."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "quality.py"
    ns = runpy.run_path(str(script), run_name="__mp_main__")  # raised SystemExit (argparse on pytest's argv) before
    assert callable(ns["main"])
