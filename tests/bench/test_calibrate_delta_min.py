"""bench/calibrate_delta_min.py: ΔL read from search lines and benchmark records, and docs/edit.md's rule."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("calibrate_delta_min", ROOT / "bench" / "calibrate_delta_min.py")
cal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cal)


def _write(path: Path, recs: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


def test_reads_one_delta_loss_per_edit_and_seed_from_pnr_jobs_of_the_split(tmp_path):
    def rec(e, v, dl, seed=0, split="dev2"):
        return {"edit_id": e, "seed": seed, "split": split, "edit_type": e.split("_")[0], "variant": v,
                "eta_search": {"delta_loss": dl}}
    recs = _write(tmp_path / "r.jsonl", [
        rec("pose_d00", "pnr+a", -10.0), rec("pose_d00", "pnr+b", -10.0),  # two tags, one search
        rec("pose_d00", "pnr_norevise+a", -99.0), rec("pose_d00", "sds", -99.0),  # not pnr jobs
        rec("pose_d01", "pnr", -30.0, seed=1), rec("pose_d02", "pnr", -50.0, split="test")])
    lines = _write(tmp_path / "dl.jsonl", [{"edit_id": "color_d00", "seed": 0, "split": "dev2", "edit_type": "color",
                                           "delta_loss": -200.0}])
    got = cal.read_delta_losses([recs, lines], "dev2")
    assert got == {("pose_d00", 0): ("pose", -10.0), ("pose_d01", 1): ("pose", -30.0),
                   ("color_d00", 0): ("color", -200.0)}


def test_rule_weighs_every_type_equally_and_doubles_the_median_decrease():
    jobs = {("color_d00", 0): ("color", -200.0), ("color_d01", 0): ("color", -100.0), ("color_d02", 0): ("color", -900.0),
            ("pose_d00", 0): ("pose", -10.0), ("pose_d01", 0): ("pose", 30.0)}
    res = cal.delta_min_rule(jobs)  # 2 per type: color -200, -100; pose -10, +30 -> median -55
    assert res["jobs"] == 4 and res["median_delta_loss"] == -55.0 and res["delta_min"] == 110.0
    assert res["per_type"]["color"] == {"n": 3, "used": 2, "median": -200.0, "min": -900.0, "max": -100.0}
    assert cal.delta_min_rule(jobs, per_type=3)["jobs"] == 5
    with pytest.raises(ValueError):
        cal.delta_min_rule({})


def test_refuses_the_test_split_and_says_when_there_is_nothing_to_calibrate_on(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cal.main(["--split", "test", "--records", str(tmp_path / "none.jsonl")])
    empty = _write(tmp_path / "e.jsonl", [])
    assert cal.main(["--records", empty]) == 2
    assert "no ΔL found" in capsys.readouterr().err
