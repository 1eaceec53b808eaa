"""bench/speed_report.py's JSON and README-block logic on generated records (no edit is run)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sr():
    spec = importlib.util.spec_from_file_location("speed_report", ROOT / "bench" / "speed_report.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["speed_report"] = mod
    spec.loader.exec_module(mod)
    return mod


def rec(sr, name, value, device="test-cpu", date="2026-12-01T00:00:00+00:00", why=None):
    return sr.figure(name, value, device=device, date=date, command=f"cmd {name}" if value is not None else None,
                     load=(1.0, 0.5, 0.25), why=why)


def full(sr, **values):
    """A whole file: every figure null ("needs CUDA") except those given."""
    return {k: rec(sr, k, values.get(k), why=None if values.get(k) is not None else "needs CUDA") for k in sr.FIGURES}


def test_null_needs_why(sr):
    with pytest.raises(ValueError):
        sr.figure("paper_edit_s", None, device="d", date="t", command=None)


def test_merge_keeps_foreign_figures(sr):
    old = full(sr, paper_edit_s=40.3, peak_mem_gb_builtin=3.2)
    for k in ("paper_edit_s", "peak_mem_gb_builtin"):
        old[k]["device"], old[k]["date"] = "NVIDIA H200", "2026-11-30T10:00:00+00:00"
    new = full(sr, cpu_quick_edit_s=44.0)
    merged = sr.merge(old, new, {"cpu_quick_edit_s", "paper_edit_s"})
    assert merged["paper_edit_s"]["value"] == 40.3 and merged["paper_edit_s"]["device"] == "NVIDIA H200"
    assert merged["paper_edit_s"]["date"] == "2026-11-30T10:00:00+00:00"
    assert merged["peak_mem_gb_builtin"]["value"] == 3.2
    assert merged["cpu_quick_edit_s"]["value"] == 44.0 and merged["cpu_quick_edit_s"]["device"] == "test-cpu"
    assert merged["peer_fit_ratio"]["value"] is None
    # a new measurement replaces an old one
    again = sr.merge(merged, full(sr, paper_edit_s=39.0), {"paper_edit_s"})
    assert again["paper_edit_s"]["value"] == 39.0 and again["cpu_quick_edit_s"]["value"] == 44.0
    # a figure not requested keeps its old (even null) record; a requested null takes the fresh why
    old2 = full(sr)
    old2["mvdream_edit_min"]["why"] = "old reason"
    new2 = full(sr)
    new2["mvdream_edit_min"]["why"] = "fresh reason"
    new2["peer_fit_ratio"]["why"] = "fresh peer"
    m2 = sr.merge(old2, new2, {"peer_fit_ratio"})
    assert m2["mvdream_edit_min"]["why"] == "old reason" and m2["peer_fit_ratio"]["why"] == "fresh peer"


def test_merge_into_empty(sr):
    new = full(sr, cpu_quick_edit_s=44.0)
    assert sr.merge({}, new, set(sr.FIGURES)) == new


def test_block_renders_values_and_nulls(sr):
    data = full(sr, cpu_quick_edit_s=43.456)
    block = sr.readme_block(data)
    assert block.startswith(sr.BEGIN) and block.endswith(sr.END)
    row = next(x for x in block.splitlines() if "`cpu_quick_edit_s`" in x)
    assert "43.46" in row and "test-cpu" in row and "2026-12-01" in row and "cmd cpu_quick_edit_s" in row
    for k in sr.FIGURES:
        if k != "cpu_quick_edit_s":
            r = next(x for x in block.splitlines() if f"`{k}`" in x)
            assert "not measured yet (needs CUDA)" in r
    del data["mvdream_edit_min"]
    assert "not measured yet (no record)" in sr.readme_block(data)


def test_readme_block_replaced_idempotently(sr, tmp_path):
    text = f"# T\n\nbefore\n\n{sr.BEGIN}\nold stuff\n{sr.END}\n\nafter\n"
    data = full(sr, cpu_quick_edit_s=44.0)
    once = sr.replace_block(text, sr.readme_block(data))
    twice = sr.replace_block(once, sr.readme_block(data))
    assert once == twice
    assert "old stuff" not in once and once.startswith("# T\n\nbefore\n\n") and once.endswith("\n\nafter\n")
    assert once.count(sr.BEGIN) == 1 and once.count(sr.END) == 1
    with pytest.raises(ValueError):
        sr.replace_block("no markers", sr.readme_block(data))


def test_json_roundtrip_and_readme_only(sr, tmp_path, monkeypatch):
    out = tmp_path / "speed.json"
    sr.write_json(out, full(sr, paper_edit_s=40.3))
    assert json.loads(out.read_text())["paper_edit_s"]["value"] == 40.3
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{sr.BEGIN}\n{sr.END}\ny\n")
    monkeypatch.setattr(sr, "README", readme)
    assert sr.main(["--readme-only", "--out", str(out)]) == 0
    first = readme.read_text()
    assert "**40.30** s" in first and first.startswith("x\n") and first.endswith("\ny\n")
    sr.main(["--readme-only", "--out", str(out)])
    assert readme.read_text() == first


def test_main_plumbing_without_an_edit(sr, tmp_path, monkeypatch):
    """main() on a CPU-only context with the edit's subprocess faked: the quick figure is read from edit.json, the
    GPU figures are null "needs CUDA", --merge keeps a GPU figure from another machine."""
    monkeypatch.setattr(sr, "context", lambda: {"cuda": False, "gpu": None, "cpu": "fake cpu", "torch": "x"})

    def fake_run(cmd, log):
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "edit.json").write_text(json.dumps({"seconds": {"total": 41.234, "search": 3.0}, "torch": "x"}))
        return 0, 47.0

    monkeypatch.setattr(sr, "run_cmd", fake_run)
    out = tmp_path / "speed.json"
    old = full(sr, paper_edit_s=40.3)
    old["paper_edit_s"]["device"] = "NVIDIA H200"
    sr.write_json(out, old)
    assert sr.main(["--only", "cpu_quick_edit_s,mvdream_edit_min", "--merge", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    q = data["cpu_quick_edit_s"]
    assert q["value"] == 41.23 and q["wall_s"] == 47.0 and q["device"] == "fake cpu" and "--preset quick" in q["command"]
    assert len(q["load"]) == 3 and q["date"].endswith("+00:00")
    assert data["paper_edit_s"]["value"] == 40.3 and data["paper_edit_s"]["device"] == "NVIDIA H200"
    assert data["mvdream_edit_min"]["value"] is None and data["mvdream_edit_min"]["why"] == "needs CUDA"
    # without --merge the foreign figure goes, and unrequested figures say why this machine cannot measure them
    sr.main(["--only", "cpu_quick_edit_s", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["paper_edit_s"]["why"] == "needs CUDA" and data["peer_fit_ratio"]["why"] == "needs CUDA (nerfacc)"


def test_peer_figure_is_the_time_ratio_from_a_peer_fit_result(sr, tmp_path):
    ctx = {"cuda": False, "gpu": None, "cpu": "fake cpu", "torch": "x"}
    f = tmp_path / "peer.json"
    f.write_text(json.dumps({"device": "fake cpu", "target_db": 30.0, "speedup_to_target": 1.8,
                             "pnr": {"trace": [[5.0, 30.5]], "time_to_target_s": 5.0},
                             "peer": {"trace": [[9.0, 30.1]], "time_to_target_s": 9.0, "nerfacc": "0.5.3"}}))
    r = sr.measure_peer(ctx, str(f))["peer_fit_ratio"]
    assert r["value"] == 1.8 and r["peer"]["time_to_target_s"] == 9.0 and r["why"] is None
    f.write_text(json.dumps({"device": "fake cpu", "speedup_to_target": None, "pnr": {"trace": [[5.0, 30.5]]},
                             "peer": {"error": "RuntimeError: nerfacc build failed"}}))
    r = sr.measure_peer(ctx, str(f))["peer_fit_ratio"]
    assert r["value"] is None and "nerfacc build failed" in r["why"]
    f.write_text(json.dumps({"device": "NVIDIA H200", "date": "2026-12-04T10:00:00+00:00", "speedup_to_target": 2.0,
                             "command": "python bench/peer_fit.py --device cuda"}))
    r = sr.measure_peer(ctx, str(f))["peer_fit_ratio"]  # measured elsewhere: keeps that machine and date
    assert r["value"] == 2.0 and r["device"] == "NVIDIA H200" and r["date"].startswith("2026-12-04")
    assert sr.measure_peer(ctx, None)["peer_fit_ratio"]["why"] == "needs CUDA (nerfacc)"


def test_merge_from_takes_only_the_figures_the_other_file_measured(sr, tmp_path):
    """--merge-from: a GPU machine's speed.json into ours; its nulls never overwrite our values."""
    ours, gpu = tmp_path / "speed.json", tmp_path / "gpu.json"
    sr.write_json(ours, full(sr, cpu_quick_edit_s=36.0, paper_edit_s=38.3))
    theirs = full(sr, paper_edit_s=14.9, mvdream_edit_min=3.2)
    theirs["paper_edit_s"]["device"] = "NVIDIA H200"
    sr.write_json(gpu, theirs)
    assert sr.main(["--merge-from", str(gpu), "--out", str(ours)]) == 0
    data = json.loads(ours.read_text())
    assert data["paper_edit_s"]["value"] == 14.9 and data["paper_edit_s"]["device"] == "NVIDIA H200"
    assert data["mvdream_edit_min"]["value"] == 3.2
    assert data["cpu_quick_edit_s"]["value"] == 36.0  # null there, kept here
    with pytest.raises(SystemExit):
        sr.main(["--merge-from", str(tmp_path / "missing.json"), "--out", str(ours)])
