"""The quality benchmark (pnr/bench/quality/) end to end on CPU: tiny random prior, tiny field, 1 test edit, pnr +
sds, a few steps."""

import json
import math
from pathlib import Path

import pytest

import pnr.bench.quality as Q


def _run_args(out: Path, prior: Path, methods: str, *extra: str) -> list[str]:
    return ["run", "--out", str(out), "--device", "cpu", "--methods", methods, "--limit", "1", "--seeds", "1",
            "--prior", str(prior), "--field", "tiny", "--fit-steps", "15", "--fit-views", "8", "--fit-res", "32",
            "--fit-rays", "256", "--fit-samples", "32", "--search-steps", "3", "--edit-steps", "4",
            "--revise-steps", "2", "--set", "res_low=16", "--set", "res_high=32", "--set", "num_samples=16",
            "--set", "idu_groups=2", "--eval-views", "4", "--eval-res", "32", "--eval-samples", "16", *extra]


def _lines(p: Path) -> list[str]:
    return [x for x in p.read_text().split("\n") if x.strip()]


def test_run_resume_truncation_table_figure(tmp_path, tiny_prior):
    out = tmp_path / "results" / "quality.jsonl"
    assert Q.main(_run_args(out, tiny_prior, "pnr,sds", "--turntables")) == 0
    recs = [json.loads(x) for x in _lines(out)]
    edit_id = Q.select_edits("test")[0].id
    assert [(r["edit_id"], r["variant"], r["seed"]) for r in recs] == [
        (edit_id, "pnr_norevise", 0), (edit_id, "pnr", 0), (edit_id, "sds", 0)]
    for r in recs:
        assert r["split"] == "test" and r["success"] is True and r["preset"] == "bench"
        m = r["metrics"]
        for k in ("clip_dir_sim", "clip_dir_consistency", "lpips_to_source", "a_lpips", "edited_attr_acc",
                  "psnr_to_target", "lpips_to_target"):
            assert isinstance(m[k], float) and math.isfinite(m[k]), k
        assert r["seconds"]["total"] > 0 and r["fit"]["steps"] == 15
    norev, pnr, sds = recs
    assert pnr["eta_auto"] and 0 <= pnr["eta"] <= 0.6 and pnr["eta_search"]["n"] == 3 and sds["eta"] == 0.0
    assert pnr["steps"] == {"search": 3, "edit": 4, "revise": 2} and norev["steps"]["revise"] == 0
    assert norev["seconds"]["total"] == pytest.approx(pnr["seconds"]["total"] - pnr["seconds"]["revise"], abs=1e-3)
    assert norev["metrics"] != pnr["metrics"]  # the snapshot is the field before the revise phase

    # rerun: every key is done, nothing is added
    before = out.read_bytes()
    assert Q.main(_run_args(out, tiny_prior, "pnr,sds")) == 0
    assert out.read_bytes() == before

    # a process killed mid-write leaves a partial last line: reads skip it, the next append cuts it off
    with open(out, "ab") as f:
        f.write(b'{"edit_id": "' + edit_id.encode() + b'", "variant": "regen", "se')
    assert len(Q.read_results(out)) == 3
    assert Q.main(_run_args(out, tiny_prior, "pnr,sds,regen")) == 0
    recs = [json.loads(x) for x in _lines(out)]  # every line parses
    assert [r["variant"] for r in recs] == ["pnr_norevise", "pnr", "sds", "regen"] and recs[-1]["eta"] == 1.0

    # table: counts per method, so partial coverage is visible
    md = tmp_path / "quality.md"
    from pnr.cli import main as pnr_main

    assert pnr_main(["bench", "quality", "table", "--jsonl", str(out), "--md", str(md), "--figure", "grid0.png"]) == 0
    text = md.read_text()
    assert (tmp_path / "grid0.png").is_file() and "](grid0.png)" in text
    assert "4 of 1400 results" in text
    for row in ("| pnr | 1/200 |", "| pnr_norevise | 1/200 |", "| sds | 1/200 |", "| regen | 1/100 |",
                "| pds | 0/100 |", "| pnr_fixed_0.4 | 0/100 |"):
        assert row in text, row
    etype = recs[0]["edit_type"]
    section = text.split(f"## {etype}\n")[1]
    assert "| pnr | 1/40 |" in section and "| regen | 1/20 |" in section

    # figure from the thumbnails the run saved (the first test edits of each type get them)
    png = tmp_path / "grid.png"
    assert Q.main(["figure", "--jsonl", str(out), "--out", str(png)]) == 0
    from PIL import Image

    w, h = Image.open(png).size
    # columns: source, the 4 variants with thumbnails (pnr, pnr_norevise, sds, regen), target; the
    # variants not run yet (pds, idu, the fixed η) are left out; label 150 px, cells 64 px + 2 px pad
    assert h > 64 and w == 150 + 6 * (64 + 2)
    # --turntables kept the eval turntables of the first run (not regen's: it ran without): a video of those columns
    import numpy as np

    tt = np.load(tmp_path / "results" / "thumbs" / edit_id / "pnr.npz")["frames"]
    assert tt.shape == (4, 32, 32, 3) and tt.dtype == np.uint8 and tt.std() > 0
    video = tmp_path / "grid.mp4"
    assert Q.main(["figure", "--jsonl", str(out), "--out", str(tmp_path / "g2.png"), "--edits", edit_id,
                   "--video", str(video)]) == 0
    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    assert len(frames) == 4 and frames[0].shape[1] == 150 + 5 * (32 + 2)  # source, pnr_norevise, pnr, sds, target
    # new records carry the success test version (v2: coverage against the frame's own background)
    assert all(r["metrics"]["sanity_version"] == 2 and "haze" in r["metrics"] for r in recs)
    assert "Success test v2" in text


def test_max_minutes_stops_before_the_first_job(tmp_path, tiny_prior):
    out = tmp_path / "q.jsonl"
    assert Q.main(_run_args(out, tiny_prior, "sds", "--max-minutes", "0.001")) == 0
    assert not out.exists() or out.read_text() == ""


def _rec(edit_id, variant, seed, dir_sim, etype="color"):
    return {"edit_id": edit_id, "variant": variant, "seed": seed, "split": "test", "edit_type": etype,
            "success": True, "eta": 0.3, "seconds": {"total": 10.0}, "metrics": {"clip_dir_sim": dir_sim}}


def test_shards_merge_and_seed_spread(tmp_path):
    out = tmp_path / "quality.jsonl"
    assert Q.shard_path(out, (2, 6)).name == "quality.shard2.jsonl"
    Q.Appender(out).append([_rec("color_01", "sds", 0, 0.2)])
    Q.Appender(Q.shard_path(out, (0, 2))).append([_rec("color_02", "sds", 0, 0.4), _rec("color_01", "sds", 1, 0.3)])
    Q.Appender(Q.shard_path(out, (1, 2))).append([_rec("color_02", "sds", 1, 0.6), _rec("color_01", "sds", 0, 9.0)])
    res = Q.read_results(out)
    assert len(res) == 4 and res[("color_01", "sds", 0)]["metrics"]["clip_dir_sim"] == 0.2  # first one wins
    rs = list(res.values())
    mean, spread = Q.summarize(rs, "clip_dir_sim")
    assert mean == pytest.approx(0.375) and spread == pytest.approx(0.075)  # seed means 0.3 and 0.45
    md = Q.markdown_table(rs, None, Q.expected_counts("test"))
    assert "| sds | 4/200 | 0.375 ± 0.075 |" in md
    assert Q.main(["merge", "--jsonl", str(out)]) == 0
    assert Q.result_files(out) == [out] and len(_lines(out)) == 4


def test_seconds_column_averages_gpu_records_only():
    gpu = [dict(_rec(f"color_0{i}", "sds", 0, 0.5), device="NVIDIA H200", seconds={"total": 30.0}) for i in (1, 2)]
    cpu = dict(_rec("color_03", "sds", 0, 0.5), device="cpu (x86_64)", seconds={"total": 270.0})
    only_cpu = dict(_rec("color_01", "idu", 0, 0.5), device="cpu (x86_64)", seconds={"total": 250.0})
    md = Q.markdown_table(gpu + [cpu, only_cpu], None, Q.expected_counts("test"))
    sds_row = next(line for line in md.splitlines() if line.startswith("| sds |"))
    idu_row = next(line for line in md.splitlines() if line.startswith("| idu |"))
    assert sds_row.endswith("| 30.0 |") and idu_row.endswith("| 250.0 (CPU) |")


def test_paired_table_uses_common_edits_and_successful_runs_only():
    failed = dict(_rec("color_02", "pnr", 0, 0.9), success=False)
    recs = [_rec("color_01", "pnr", 0, 0.5), failed, _rec("color_01", "sds", 0, 0.7), _rec("color_02", "sds", 0, 0.3),
            _rec("color_03", "sds", 0, 0.1), _rec("color_01", "pnr", 1, 0.0)]  # seed 1 and sds-only edits: left out
    md = Q.paired_table(recs, ("pnr", "sds"), "edits")
    assert "| seed 0, 2 edits |" in md
    assert "| pnr | 0.500 |" in md and md.splitlines()[2].endswith("| 1/2 |")  # the failed run: no metrics, no success
    assert "| sds | 0.500 |" in md and md.splitlines()[3].endswith("| 2/2 |")
    assert "no edit finished by all" in Q.paired_table(recs, ("pnr", "idu"), "edits")
    text = Q.claims_section(recs + [_rec("color_01", "pnr_fixed_0.2", 0, 0.6)])
    assert "(0.2 of 0.0, 0.2, 0.4, 0.6, 0.8)" in text and "| pnr_fixed_0.2 | 0.600 |" in text
    assert "| pnr_fixed_0.4 |" not in text


def test_job_plan_and_methods():
    assert Q.parse_methods("pnr_fixed,pnr_norevise") == [f"pnr_fixed_{e:.1f}" for e in Q.FIXED_ETAS] + ["pnr"]
    jobs = Q.jobs_of("color_01", Q.parse_methods(None), 2)
    assert len(jobs) == 12 and {j.variant for j in jobs if j.seed == 1} == {"pnr", "sds"}
    es = Q.select_edits("test")
    assert len(es) == 100 and all(e.split == "test" for e in es)
    assert [e.edit_type for e in es[:5]] == list(Q.TYPES)  # interleaved: partial runs cover every type
    with pytest.raises(SystemExit):
        Q.parse_methods("foo")


def test_a_diverged_run_is_a_finished_failure_and_keeps_its_edit_phase_snapshot(tmp_path, tiny_prior, monkeypatch):
    import pnr.edit.loop as loop
    from pnr.errors import NumericalError

    real = loop.edit

    def diverging(*args, **kw):  # the whole run happens (snapshot included), then the revise loss is NaN
        real(*args, **kw)
        raise NumericalError("the revise loss became nan at step 5")

    monkeypatch.setattr(loop, "edit", diverging)
    out = tmp_path / "q.jsonl"
    assert Q.main(_run_args(out, tiny_prior, "pnr", "--no-warm-up", "--thumb-edits", "0")) == 0
    norev, pnr = [json.loads(x) for x in _lines(out)]
    assert norev["variant"] == "pnr_norevise" and norev["success"] and norev["metrics"]["a_lpips"] > 0
    assert pnr["variant"] == "pnr" and pnr["success"] is False and pnr["metrics"] is None and "nan" in pnr["error"]
    md = Q.markdown_table(list(Q.read_results(out).values()), None, Q.expected_counts("test"))
    assert "| pnr | 1/200 | – | – | – | – | – | – | – | – | 0% |" in md


def test_set_overrides_parse_bools_and_reject_junk():
    from types import SimpleNamespace

    def parse(*items):
        return Q._parse_overrides(SimpleNamespace(search_steps=None, edit_steps=None, revise_steps=None, set=list(items)))

    assert parse("render_graphs=false") == {"render_graphs": False}  # not bool("false")
    assert parse("render_graphs=True", "num_samples=32", "t_end=0.1,0.3") == {
        "render_graphs": True, "num_samples": 32, "t_end": (0.1, 0.3)}
    for bad in ("render_graphs=maybe", "eta=0.3", "nonsense=1"):
        with pytest.raises(SystemExit):
            parse(bad)


def test_compare_pairs_jobs_and_reports_mean_absolute_difference():
    a = {Q.key_of(r): r for r in [_rec("color_01", "pnr", 0, 0.5), _rec("color_02", "pnr", 0, 0.7),
                                   _rec("color_03", "pnr", 0, 0.2)]}
    b = {Q.key_of(r): r for r in [_rec("color_01", "pnr", 0, 0.6), _rec("color_02", "pnr", 0, 0.4),
                                   dict(_rec("color_03", "pnr", 0, 0.9), success=False), _rec("color_04", "pnr", 0, 0.1)]}
    lines = Q.compare_runs(a, b).splitlines()
    assert lines[0].startswith("| 2 jobs in both, successful in both (3 in both) |")
    assert "| dir sim ↑ | 0.600 | 0.500 | 0.200 |" in lines  # (0.5+0.7)/2, (0.6+0.4)/2, (0.1+0.3)/2
    assert "| success | 3/3 | 2/3 |  |" in lines


def test_jobs_left_counts_unfinished_run_jobs_per_variant():
    full = Q.jobs_left(set())
    assert sum(full.values()) == 1200 and full["pnr"] == 200 and full["sds"] == 200 and full["idu"] == 100
    done = {("color_01", "pnr", 0), ("color_01", "pnr", 1), ("color_01", "idu", 0), ("color_01", "pnr_norevise", 0)}
    left = Q.jobs_left(done)
    assert left["pnr"] == 198 and left["idu"] == 99 and sum(left.values()) == 1197


def test_read_jsonl_reads_gzipped_archives_like_plain_files(tmp_path):
    import gzip

    recs = [_rec("color_01", "pnr", 0, 0.5), _rec("color_02", "sds", 1, 0.3)]
    text = "".join(json.dumps(r) + "\n" for r in recs)
    (tmp_path / "a.jsonl").write_text(text)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    plain, packed = Q.read_jsonl(tmp_path / "a.jsonl"), Q.read_jsonl(tmp_path / "a.jsonl.gz")
    assert plain == packed == recs


def test_readme_tables_are_replaced_from_the_generated_markdown(tmp_path):
    md = "\n".join(["# q", "| method | jobs |", "|---|---|", "| pnr | 2/2 |", "", "## Paired",
                    "| seed 0, 3 edits finished by every method | x |", "|---|---|", "| pnr | 0.5 |", "",
                    "| seed 0, 3 edits with pnr and each fixed η | x |", "|---|---|", "| pnr | 0.6 |", ""])
    readme = tmp_path / "README.md"
    readme.write_text("\n".join(["# top", "| method | jobs |", "|---|---|", "| untouched | 0 |", "",
                                 "### Quality benchmark", "text", "| method | jobs |", "|---|---|", "| pnr | 1/2 |",
                                 "| sds | 0/2 |", "claims", "| seed 0, 1 edits finished by every method | x |",
                                 "|---|---|", "| pnr | 0.1 |", "", "| seed 0, 1 edits with pnr | x |", "|---|---|",
                                 "| pnr | 0.2 |", "", "### Next", "| method | jobs |", "| other | 9 |", ""]))
    assert Q.update_readme_tables(readme, md) == 3
    out = readme.read_text().splitlines()
    assert out[:4] == ["# top", "| method | jobs |", "|---|---|", "| untouched | 0 |"]  # before the section
    assert "| pnr | 2/2 |" in out and "| sds | 0/2 |" not in out and "claims" in out
    assert "| pnr | 0.5 |" in out and "| pnr | 0.6 |" in out and "| pnr | 0.1 |" not in out
    assert out[-3:] == ["### Next", "| method | jobs |", "| other | 9 |"]  # after it
    readme.write_text("# no quality section\n")
    with pytest.raises(SystemExit, match="Quality benchmark"):
        Q.update_readme_tables(readme, md)


def test_ablation_variants_share_one_cached_source_and_record_their_settings(tmp_path, tiny_prior):
    """--ablation runs every method once per tag (variant METHOD+TAG, pnr's snapshot as pnr_norevise+TAG) with the
    tag's settings on top of --set; --source-cache fits each source once; --identity-grad records gradient norms."""
    abl = tmp_path / "abl.json"
    abl.write_text(json.dumps({"base": {}, "snr": {"t_start": [0.85, 0.85], "identity_scale": 0.1},
                               "ref": {"methods": ["sds"]}, "_comment": {}}))
    out, cache = tmp_path / "q.jsonl", tmp_path / "cache"
    args = _run_args(out, tiny_prior, "pnr", "--no-warm-up", "--thumb-edits", "0", "--ablation", str(abl),
                     "--source-cache", str(cache), "--identity-grad", "--split", "dev")
    assert Q.main(args) == 0
    recs = {r["variant"]: r for r in map(json.loads, _lines(out))}
    assert set(recs) == {"pnr+base", "pnr_norevise+base", "pnr+snr", "pnr_norevise+snr", "sds+ref"}
    assert recs["pnr+snr"]["config_overrides"]["identity_scale"] == 0.1
    assert recs["pnr+snr"]["config_overrides"]["t_start"] == [0.85, 0.85] and recs["pnr+base"]["config_overrides"]["res_high"] == 32
    g = recs["pnr+base"]["identity_grad"]
    assert g["sds"] > 0 and g["l1_sds_views"] > 0 and g["l1_one_view"] > 0
    assert len(list(cache.iterdir())) == 1  # one fit, reused by the second tag
    assert Q.main(args) == 0 and len(_lines(out)) == 5  # finished keys are skipped


def test_versus_and_ablation_count_failures_as_zero(tmp_path, capsys):
    """Edit accuracy with a failed run counted as 0 next to the mean over successes; paired on the same edits."""
    def rec(e, v, acc, ok=True, seed=0):
        return {"edit_id": e, "variant": v, "seed": seed, "split": "test", "edit_type": e.split("_")[0], "success": ok,
                "eta": 0.2, "metrics": {"edited_attr_acc": acc, "lpips_to_source": 0.1, "psnr_to_target": 20.0,
                                        "clip_dir_sim": 0.7} if ok else None}
    new, base = tmp_path / "new.jsonl", tmp_path / "base.jsonl"
    Q.Appender(new).append([rec("pose_01", "pnr", 1.0), rec("pose_02", "pnr", 1.0, ok=False)])
    Q.Appender(base).append([rec("pose_01", "sds", 1.0), rec("pose_02", "sds", 0.0), rec("pose_03", "sds", 1.0)])
    assert Q.main(["versus", "--new", str(new), "--base", str(base), "--variants", "pnr", "--against", "sds"]) == 0
    out = capsys.readouterr().out
    assert "2 test edits" in out  # pose_03 is not in the new file: left out
    assert "| pnr (new, seed 0) | – | – | – | 0.50 | – | 0.50 | 1.00 | 1/2 |" in out
    assert "| sds (committed, seed 0) | – | – | – | 0.50 | – | 0.50 | 0.50 | 2/2 |" in out
    # --paired: only edits every row has (sds lacks pose_02 at seed 1); --seed: only that seed's rows
    Q.Appender(base).append([rec("pose_01", "sds", 0.0, seed=1)])
    Q.Appender(new).append([rec("pose_01", "pnr", 1.0, seed=1), rec("pose_02", "pnr", 1.0, seed=1)])
    assert Q.main(["versus", "--new", str(new), "--base", str(base), "--variants", "pnr", "--against", "sds",
                   "--seed", "1", "--paired"]) == 0
    out = capsys.readouterr().out
    assert "1 test edits" in out and "seed 0" not in out
    assert "| pnr (new, seed 1) | – | – | – | 1.00 | – | 1.00 | 1.00 | 1/1 |" in out
    assert "| sds (committed, seed 1) | – | – | – | 0.00 | – | 0.00 | 0.00 | 1/1 |" in out
    abl = tmp_path / "abl.jsonl"
    Q.Appender(abl).append([rec("pose_01", "pnr+ref", 0.0), rec("pose_02", "pnr+ref", 1.0),
                            rec("pose_01", "pnr+x", 1.0), rec("pose_02", "pnr+x", 1.0, ok=False)])
    assert Q.main(["ablation", "--jsonl", str(abl), "--types", "pose"]) == 0
    out = capsys.readouterr().out
    assert "| pnr+ref | 2 | 0.50 |  | 0.50 | 2/2 |" in out and "| pnr+x | 2 | 0.50 | +0.00 | 0.50 | 1/2 |" in out


def test_gap_splits_a_metric_difference_by_type_correctness_and_eta(tmp_path, capsys):
    def rec(e, v, lp, acc=1.0, eta=None, ok=True):
        return {"edit_id": e, "variant": v, "seed": 0, "split": "test", "edit_type": e.split("_")[0], "success": ok,
                "eta": eta, "metrics": {"edited_attr_acc": acc, "lpips_to_source": lp} if ok else None}
    f = tmp_path / "r.jsonl"
    Q.Appender(f).append([rec("pose_01", "pnr", 0.20, eta=0.3), rec("pose_01", "sds", 0.10),
                          rec("shape_01", "pnr", 0.10, acc=0.0, eta=0.1), rec("shape_01", "sds", 0.10),
                          rec("object_01", "pnr", 0.50, eta=0.3, ok=False), rec("object_01", "sds", 0.10)])
    assert Q.main(["gap", "--jsonl", str(f)]) == 0
    out = capsys.readouterr().out
    assert "| pose | 1 | 0.200 | 0.100 | +0.100 |" in out and "| object | 0 |" in out  # a failed run is left out
    assert "| pose | 1 | 0.200 | 0.100 | +0.100 | – |" in out  # one pair: no standard error
    assert "| all | 2 | 0.150 | 0.100 | +0.050 | 0.050 |" in out and "| both right | 1 | 0.200 | 0.100 | +0.100 |" in out
    assert "| pnr η in [0.2, 0.4) | 1 | 0.200 | 0.100 | +0.100 |" in out and "| pnr η in [0.05, 0.2) | 1 | 0.100 |" in out


def test_dev2_split_is_selectable_and_interleaved():
    from pnr.bench.quality.jobs import select_edits

    es = select_edits("dev2", ["pose"], limit=6)
    assert [e.id for e in es] == [f"pose_d{i:02d}" for i in range(6)]
    assert len({e.prompt for e in es}) == 6  # one of each pose: what the dev split lacks
    mixed = select_edits("dev2", ["color", "object"], limit=4)
    assert [e.id for e in mixed] == ["color_d00", "object_d00", "color_d01", "object_d01"]


def test_edits_picks_edits_by_id_and_names_unknown_ones(tmp_path, tiny_prior):
    out = tmp_path / "q.jsonl"
    second = Q.select_edits("test")[1].id
    args = _run_args(out, tiny_prior, "sds")
    i = args.index("--limit")
    del args[i:i + 2]
    assert Q.main([*args, "--limit", "2", "--edits", second]) == 0
    assert [json.loads(x)["edit_id"] for x in _lines(out)] == [second]
    with pytest.raises(SystemExit, match="--edits: nope_01 not among the 2 edits of --split test --limit 2"):
        Q.main([*args, "--limit", "2", "--edits", f"{second},nope_01"])
