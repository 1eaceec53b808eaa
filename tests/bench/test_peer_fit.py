"""bench/peer_fit.py: reading a PSNR-against-seconds trace, and the pnr side run end to end on a tiny dataset
(the nerfacc side needs CUDA; without nerfacc its failure is reported in the result, not raised)."""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import peer_fit  # noqa: E402


def test_time_to_target_interpolates_between_evaluations():
    trace = [(2.0, 20.0), (4.0, 28.0), (8.0, 32.0), (15.0, 33.0)]
    assert peer_fit.time_to(trace, 30.0) == pytest.approx(6.0)  # 28 dB at 4 s, 32 at 8 s -> 30 at 6 s
    assert peer_fit.time_to(trace, 19.0) == 2.0  # already there at the first evaluation
    assert peer_fit.time_to(trace, 40.0) is None


def test_psnr_at_takes_the_last_evaluation_before_and_needs_a_run_that_long():
    trace = [(2.0, 20.0), (15.1, 30.0), (30.3, 31.0), (60.0, 33.0)]
    assert peer_fit.psnr_at(trace, 30.0) == 31.0  # 30.3 s is the 30 s budget's evaluation (a step past it)
    assert peer_fit.psnr_at(trace[:2], 30.0) is None  # stopped at 15 s: no figure at 30 s


def test_the_pnr_side_runs_and_a_missing_peer_is_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nerfacc", None)  # as on a machine without nerfacc
    out = tmp_path / "peer.json"
    assert peer_fit.main(["--device", "cpu", "--field", "tiny", "--res", "16", "--views", "8", "--budgets", "1,3",
                          "--target", "10", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [len(p) for p in r["pnr"]["trace"]] == [2, 2] and r["pnr"]["trace"][1][0] >= 3.0
    held = peer_fit.make_dataset(tmp_path / "same", 16, 8, 0).subset("test")  # the dataset is seeded: the same one
    white = sum(10 * math.log10(1 / float(((im - 1) ** 2).mean())) for im in held.images) / len(held)
    assert r["pnr"]["trace"][1][1] > white + 0.5  # a real fit: closer to the views than a blank white frame
    assert "nerfacc" in r["peer"]["error"] and r["speedup_to_target"] is None
