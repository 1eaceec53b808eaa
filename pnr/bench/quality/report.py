"""Reports of the results: the markdown tables (per edit type, averaged, paired for the paper's claims), README's
copies of them, `compare`, `versus` and `ablation` tables, jobs left, and the thumbnail figure."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from .jobs import FIXED_ETAS, THUMB_RES, TYPES, VARIANTS, jobs_left, seeds_of, select_edits, split_tag
from .results import read_results

COLUMNS = (  # header, metric key (or special), format, better
    ("dir sim ↑", "clip_dir_sim", "{:.3f}"),
    ("dir cons ↑", "clip_dir_consistency", "{:.3f}"),
    ("LPIPS src ↓", "lpips_to_source", "{:.3f}"),
    ("A-LPIPS ↓", "a_lpips", "{:.4f}"),
    ("edit acc ↑", "edited_attr_acc", "{:.2f}"),
    ("preserve ↑", "preservation", "{:.2f}"),
    ("PSNR tgt ↑", "psnr_to_target", "{:.2f}"),
    ("LPIPS tgt ↓", "lpips_to_target", "{:.3f}"),
    ("success", "success", "{:.0%}"),
    ("η", "eta", "{:.2f}"),
    ("s/edit", "seconds", "{:.1f}"),
)


def _value(r: dict, key: str):
    if key == "success":
        return 1.0 if r.get("success") else 0.0
    if key == "eta":
        return r.get("eta")
    if key == "seconds":
        s = r.get("seconds") or {}
        return s.get("total")
    m = r.get("metrics")
    return None if m is None else m.get(key)


def _mean(vals):
    vals = [float(v) for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarize(recs: list[dict], key: str) -> tuple[float | None, float | None]:
    """(mean over all records, spread over seeds) — spread = population s.d. of the per-seed means over
    the edits finished for every seed (for 2 seeds: half the gap), None with one seed."""
    mean = _mean(_value(r, key) for r in recs)
    seeds = sorted({r["seed"] for r in recs})
    if len(seeds) < 2:
        return mean, None
    common = set.intersection(*({r["edit_id"] for r in recs if r["seed"] == s} for s in seeds))
    if not common:
        return mean, None
    per_seed = [_mean(_value(r, key) for r in recs if r["seed"] == s and r["edit_id"] in common) for s in seeds]
    if any(v is None for v in per_seed):
        return mean, None
    mu = sum(per_seed) / len(per_seed)
    return mean, math.sqrt(sum((v - mu) ** 2 for v in per_seed) / len(per_seed))


def _cell(mean, spread, fmt: str) -> str:
    if mean is None:
        return "–"
    s = fmt.format(mean)
    if spread is not None:
        s += " ± " + (fmt.format(spread).rstrip("%") + "%" if fmt.endswith("%}") else fmt.format(spread))
    return s


def expected_counts(split: str, n_multi: int = 2) -> dict[tuple[str, str], int]:
    """(variant, edit type) -> number of jobs that cover the whole split."""
    es = select_edits(split)
    return {(v, t): sum(1 for e in es if e.edit_type == t) * len(seeds_of(v, n_multi)) for v in VARIANTS for t in TYPES}


def _on_cpu(r: dict) -> bool:
    return str(r.get("device", "")).lower().startswith("cpu")


def _seconds_cell(rs: list[dict], fmt: str) -> str:
    """s/edit over the GPU records; a variant with CPU records only shows their time, marked "(CPU)"."""
    gpu = [r for r in rs if not _on_cpu(r)]
    if gpu:
        return _cell(*summarize(gpu, "seconds"), fmt)
    return _cell(*summarize(rs, "seconds"), fmt) + " (CPU)" if rs else "–"


def markdown_table(recs: list[dict], etype: str | None, expected: dict) -> str:
    head = ["method", "jobs", *[c[0] for c in COLUMNS]]
    rows = []
    for v in VARIANTS:
        rs = [r for r in recs if r["variant"] == v and (etype is None or r["edit_type"] == etype)]
        exp = sum(n for (vv, t), n in expected.items() if vv == v and (etype is None or t == etype))
        cells = [v, f"{len(rs)}/{exp}"]
        for _, key, fmt in COLUMNS:
            if key == "seconds":  # times from different machines do not average: GPU records only
                cells.append(_seconds_cell(rs, fmt))
            else:
                cells.append(_cell(*summarize(rs, key), fmt) if rs else "–")
        rows.append(cells)
    return _markdown(head, rows)


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    line = lambda c: "| " + " | ".join(c) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("---" for _ in head) + "|", *map(line, rows)])


CLAIM_COLUMNS = (("dir sim ↑", "clip_dir_sim", "{:.3f}"), ("dir cons ↑", "clip_dir_consistency", "{:.3f}"),
                 ("LPIPS src ↓", "lpips_to_source", "{:.3f}"), ("edit acc ↑", "edited_attr_acc", "{:.2f}"),
                 ("PSNR tgt ↑", "psnr_to_target", "{:.2f}"))
MAIN_METHODS = ("pnr", "pnr_norevise", "sds", "pds", "idu", "regen")
FIXED_VARIANTS = tuple(f"pnr_fixed_{e:.1f}" for e in FIXED_ETAS)


def paired_table(recs: list[dict], variants: tuple[str, ...], title: str) -> str:
    """Seed-0 records of `variants` on the edits that every one of them has finished (a like-for-like
    comparison while coverage is partial): means over the successful runs, and successes / edits."""
    by = {(r["variant"], r["edit_id"]): r for r in recs if r["seed"] == 0 and r["variant"] in variants}
    edits = set.intersection(*({e for (v, e) in by if v == vv} for vv in variants)) if by else set()
    head = [f"seed 0, {len(edits)} {title}", *[c[0] for c in CLAIM_COLUMNS], "η", "success"]
    if not edits:
        return _markdown(head, [["(no edit finished by all)"] + [""] * (len(head) - 1)])
    rows = []
    for v in variants:
        rs = [by[(v, e)] for e in sorted(edits)]
        cells = [v] + [_cell(_mean(_value(r, k) for r in rs if r.get("success")), None, f) for _, k, f in CLAIM_COLUMNS]
        cells += [_cell(_mean(r.get("eta") for r in rs), None, "{:.2f}"), f"{sum(1 for r in rs if r.get('success'))}/{len(rs)}"]
        rows.append(cells)
    return _markdown(head, rows)


def compare_runs(recs_a: dict, recs_b: dict) -> str:
    """Markdown: the same jobs (key) in two result sets, both successful — mean of each metric in A and B and
    the mean per-job |A - B|. Why: a code path meant to leave results unchanged within noise (e.g. `--set
    render_graphs=true`) is judged against a plain rerun compared the same way (GPU runs are not bit-exact)."""
    common = sorted(set(recs_a) & set(recs_b))
    both = [k for k in common if recs_a[k].get("success") and recs_b[k].get("success")]
    head = [f"{len(both)} jobs in both, successful in both ({len(common)} in both)", "A", "B", "mean |A - B|"]
    rows = []
    for name, key, fmt in CLAIM_COLUMNS + (("LPIPS tgt ↓", "lpips_to_target", "{:.3f}"), ("η", "eta", "{:.3f}")):
        pairs = [(_value(recs_a[k], key), _value(recs_b[k], key)) for k in both]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        diff = _mean(abs(float(x) - float(y)) for x, y in pairs)
        rows.append([name, _cell(_mean(x for x, _ in pairs), None, fmt), _cell(_mean(y for _, y in pairs), None, fmt),
                     _cell(diff, None, fmt)])
    ok_a = sum(1 for k in common if recs_a[k].get("success"))
    ok_b = sum(1 for k in common if recs_b[k].get("success"))
    rows.append(["success", f"{ok_a}/{len(common)}", f"{ok_b}/{len(common)}", ""])
    return _markdown(head, rows)


def cmd_compare(a) -> int:
    ra, rb = read_results(Path(a.a)), read_results(Path(a.b))
    if a.variant:
        ra = {k: r for k, r in ra.items() if r["variant"] == a.variant}
    text = compare_runs(ra, rb)
    print(f"A = {a.a}, B = {a.b}" + (f", variant {a.variant}" if a.variant else "") + "\n\n" + text)
    return 0


def _acc0(r: dict | None) -> float:
    """Edit accuracy with a failed run (no object, fog, diverged, missing) counted as 0."""
    return float((r.get("metrics") or {}).get("edited_attr_acc") or 0.0) if r and r.get("success") else 0.0


def _ok_mean(rs: list, key: str) -> float | None:
    vals = [r["metrics"][key] for r in rs if r and r.get("success") and r.get("metrics") and r["metrics"].get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(v, f: str = ".3f") -> str:
    return "–" if v is None else format(v, f)


def method_rows(rows: list[tuple[str, dict]], edits: list[str], seed: int = 0) -> str:
    """Markdown: per row (label, {edit_id: record}) edit accuracy per type and overall with failures as 0, the
    overall mean over successful runs, success, LPIPS to source, PSNR to target, dir sim (means over successes)."""
    head = ["method", *[f"{t} acc" for t in TYPES], "all acc (fail=0)", "all acc (successes)", "success",
            "LPIPS src ↓", "PSNR tgt ↑", "dir sim ↑"]
    out = []
    for label, recs in rows:
        rs = [recs.get(e) for e in edits]
        per = []
        for t in TYPES:
            ts = [recs.get(e) for e in edits if e.startswith(t + "_")]
            per.append(_fmt(sum(map(_acc0, ts)) / len(ts), ".2f") if ts else "–")
        ok = [r for r in rs if r and r.get("success")]
        out.append([label, *per, _fmt(sum(map(_acc0, rs)) / len(rs), ".2f"), _fmt(_ok_mean(ok, "edited_attr_acc"), ".2f"),
                    f"{len(ok)}/{len(rs)}", _fmt(_ok_mean(ok, "lpips_to_source")), _fmt(_ok_mean(ok, "psnr_to_target"), ".2f"),
                    _fmt(_ok_mean(ok, "clip_dir_sim"))])
    return _markdown(head, out)


def cmd_versus(a) -> int:
    """New runs (--new) against the committed results (--base) on the edits the new file covers, seed by seed."""
    new, base = read_results(Path(a.new)), read_results(Path(a.base))
    seeds = None if a.seed is None else {a.seed}
    rows = []
    for v in a.variants.split(","):
        for seed in sorted({k[2] for k in new if k[1] == v and (seeds is None or k[2] in seeds)}):
            rows.append((f"{v} (new, seed {seed})", {k[0]: r for k, r in new.items() if k[1] == v and k[2] == seed}))
    edits = sorted({k[0] for k in new if k[1] == a.variants.split(",")[0]},
                   key=lambda e: (TYPES.index(e.rsplit("_", 1)[0]), e))
    for v in a.against.split(","):
        for seed in sorted({k[2] for k in base if k[1] == v and (seeds is None or k[2] in seeds)}):
            rows.append((f"{v} (committed, seed {seed})", {k[0]: r for k, r in base.items() if k[1] == v and k[2] == seed}))
    if a.paired:  # only the edits every row finished: a like-for-like comparison, missing jobs not counted as 0
        edits = [e for e in edits if all(e in recs for _, recs in rows)]
    print(f"{len(edits)} test edits ({', '.join(f'{t} {sum(e.startswith(t + chr(95)) for e in edits)}' for t in TYPES)}); "
          f"new = {a.new}, committed = {a.base}\n")
    print(method_rows(rows, edits))
    return 0


def cmd_ablation(a) -> int:
    """Each tag of an ablation run against --ref on the same edits: edit accuracy (failures as 0) and its paired
    difference, per type, success, LPIPS to source, PSNR to target."""
    recs = read_results(Path(a.jsonl))
    by: dict[str, dict[str, dict]] = {}
    for (e, v, s), r in recs.items():
        if s == a.seed:
            by.setdefault(v, {})[e] = r
    ref = by[a.ref]
    head = ["variant", "edits", "edit acc (fail=0)", f"Δ vs {a.ref} (same edits)", *[f"{t}" for t in TYPES if t in a.types],
            "success", "LPIPS src ↓", "PSNR tgt ↑", "η mean"]
    rows = []
    for v in sorted(by, key=lambda v: (split_tag(v)[0] != "pnr", split_tag(v)[0], v != a.ref, v)):
        es = sorted(e for e in by[v] if e in ref)
        if not es:
            continue
        rs = [by[v][e] for e in es]
        acc = sum(map(_acc0, rs)) / len(rs)
        d = acc - sum(_acc0(ref[e]) for e in es) / len(es)
        per = []
        for t in (t for t in TYPES if t in a.types):
            ts = [by[v][e] for e in es if e.startswith(t + "_")]
            per.append(_fmt(sum(map(_acc0, ts)) / len(ts), ".2f") if ts else "–")
        ok = [r for r in rs if r.get("success")]
        etas = [r["eta"] for r in rs if r.get("eta") is not None]
        rows.append([v, str(len(es)), _fmt(acc, ".2f"), "" if v == a.ref else f"{d:+.2f}", *per, f"{len(ok)}/{len(rs)}",
                     _fmt(_ok_mean(ok, "lpips_to_source")), _fmt(_ok_mean(ok, "psnr_to_target"), ".2f"),
                     _fmt(sum(etas) / len(etas) if etas else None, ".2f")])
    print(_markdown(head, rows))
    return 0


ETA_BINS = ((0.0, 0.05), (0.05, 0.2), (0.2, 0.4), (0.4, 1.01))


def cmd_gap(a) -> int:
    """Where variant A's metric differs from B's, on the jobs (edit, seed) both finished successfully: per edit type,
    on the edits both got right (edit accuracy 1), and by A's η. Why: a gap in a mean (issue 19: LPIPS to the
    source) can come from the edits A gets right and B does not, or from the perturbation itself."""
    recs = read_results(Path(a.jsonl))
    by = {(k[0], k[2]): {} for k in recs}
    for (e, v, s), r in recs.items():
        if a.seed is None or s == a.seed:
            by[(e, s)][v] = r
    pairs = [(e, d[a.a], d[a.b]) for (e, _), d in sorted(by.items())
             if a.a in d and a.b in d and d[a.a].get("success") and d[a.b].get("success")]
    m = a.metric

    def row(label: str, ps: list) -> list[str]:
        if not ps:
            return [label, "0", "–", "–", "–", "–"]
        va, vb = [_value(x, m) for _, x, _ in ps], [_value(y, m) for _, _, y in ps]
        d = [x - y for x, y in zip(va, vb) if x is not None and y is not None]
        # standard error of the paired mean difference: how far the gap could move on another draw of edits
        md = _mean(d)
        se = (sum((x - md) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5 if len(d) > 1 else None
        return [label, str(len(ps)), _fmt(_mean(va)), _fmt(_mean(vb)), f"{_mean(va) - _mean(vb):+.3f}",
                "–" if se is None else f"{se:.3f}"]

    right = lambda x: (_value(x, "edited_attr_acc") or 0) >= 1.0  # noqa: E731
    rows = [row(t, [p for p in pairs if p[0].startswith(t + "_")]) for t in TYPES]
    rows += [row("all", pairs), row("both right", [p for p in pairs if right(p[1]) and right(p[2])])]
    rows += [row(f"{a.a} η in [{lo:g}, {hi:g})", [p for p in pairs if p[1].get("eta") is not None
                                                  and lo <= p[1]["eta"] < hi]) for lo, hi in ETA_BINS]
    print(_markdown(["jobs", "n", a.a, a.b, f"{a.a} − {a.b}", "s.e. (paired)"], rows))
    return 0


def claims_section(recs: list[dict]) -> str:
    """The like-for-like tables behind the README's point-by-point comparison with the paper's claims."""
    fixed = tuple(v for v in FIXED_VARIANTS if any(r["variant"] == v and r["seed"] == 0 for r in recs))
    return "\n".join([
        "## Paired comparisons (for the paper's claims)", "",
        "Methods on the test edits finished by all of them (seed 0; metrics over successful runs):", "",
        paired_table(recs, MAIN_METHODS, "edits finished by every method"), "",
        "Adaptive η (pnr) against the fixed-η variants "
        + ("" if len(fixed) == len(FIXED_VARIANTS) else
           f"that have results so far ({', '.join(v[len('pnr_fixed_'):] for v in fixed) or 'none'} of "
           f"{', '.join(f'{e:.1f}' for e in FIXED_ETAS)}) ")
        + "on the edits finished by all of them:", "",
        paired_table(recs, ("pnr", *fixed), "edits with pnr and each fixed η"),
    ])


def _reference_line(recs: list[dict]) -> str:
    """What doing nothing scores, and how well the sources were fitted (one value per edit)."""
    per_edit: dict[str, dict] = {}
    for r in recs:
        per_edit.setdefault(r["edit_id"], r)
    nothing = _mean((r.get("metrics") or {}).get("psnr_source_to_target") for r in per_edit.values())
    fit = _mean((r.get("fit") or {}).get("source_psnr_to_exact") for r in per_edit.values())
    if nothing is None and fit is None:
        return ""
    return (f"Reference levels over the {len(per_edit)} edits with results: the unedited source field scores "
            f"PSNR tgt {_cell(nothing, None, '{:.2f}')} dB (doing nothing); the fitted sources reach "
            f"{_cell(fit, None, '{:.2f}')} dB against exact renders of the source object.")


def _sanity_note(recs: list[dict]) -> str:
    """Which success test the records used (image_metrics.render_sanity, version 1 or 2)."""
    v1 = [r for r in recs if r.get("metrics") and r["metrics"].get("sanity_version", 1) == 1]
    if not v1:
        return ("Success test v2: silhouette coverage against each frame's own background (border median), "
                "so a faint haze in empty space is not an explosion; haze > 0.25 off the source's background "
                "(fog) is.")
    tinted: dict[str, int] = {}
    for r in v1:
        m = r["metrics"]
        if m.get("exploded") and (m.get("coverage") or 0) >= 0.99:
            tinted[r["variant"]] = tinted.get(r["variant"], 0) + 1
    by = ", ".join(f"{v} {n}" for v, n in sorted(tinted.items(), key=lambda x: -x[1]))
    return (f"**Success test caveat:** {len(v1)} of {len(recs)} records were scored with success test v1, which "
            "measured coverage against the source's background colour, so a faint uniform tint of the empty "
            "space (> 0.04, e.g. the thin haze a field regenerated from random init keeps) read as 100% "
            f"coverage = \"exploded\" ({len(tinted)} variants with such v1 records at coverage ≥ 0.99: {by}; "
            "such records count as failures in the success column; the first session's 12 regen records, all "
            "failed this way, were deleted and are re-run under v2). v2 "
            "(image_metrics.render_sanity) measures the silhouette against each frame's own border; the JSONL "
            "does not hold what v2 needs, so v1 records keep v1 until re-run (delete their lines and run again).")


def cmd_table(a) -> int:
    from pnr.io import atomic_write_text

    recs = [r for r in read_results(Path(a.jsonl)).values() if r.get("split", "test") == a.split]
    expected = expected_counts(a.split, a.seeds)
    n_exp = sum(expected.values())
    n_runs = n_exp - sum(n for (v, _), n in expected.items() if v == "pnr_norevise")
    cmd = " ".join(["python bench/quality.py table --jsonl", a.jsonl, *(["--md", a.md] if a.md else []),
                    *(["--figure", a.figure] if a.figure else [])])
    settings = sorted({(r.get("preset"), json.dumps(r.get("steps")), json.dumps(r.get("config_overrides")),
                        r.get("device"), r.get("torch")) for r in recs})
    parts = [
        "# Quality benchmark (paper Tables 1-2) on the built-in domain",
        "",
        f"Generated by `{cmd}` from the committed JSONL ({len(recs)} of {n_exp} results on the {a.split} split, "
        f"from {n_runs} runs: pnr_norevise is read off the pnr runs"
        + (", **partial coverage: the numbers below are over the finished jobs only**" if len(recs) < n_exp else "")
        + "). Runs: `python bench/quality.py run` (see its docstring and the README; `--shard I/N` per process, "
        "or `--workers K` for one command on a worker pool: docs/batch.md).",
        "",
        "Each row: mean over the finished edits; for methods run with 2 seeds (pnr, pnr_norevise, sds) "
        "`± x` is the spread over seeds (population s.d. of the per-seed means over the edits finished for "
        "both seeds, i.e. half the gap between the two seeds). `jobs` = finished / expected (edits × seeds). "
        "Metrics (docs/metrics.md): dir sim / dir cons = directional similarity / consistency with the "
        "domain encoder; LPIPS src = perceptual distance (ST-LPIPS alex) to the source; A-LPIPS = between "
        "adjacent turntable frames; edit acc / preserve = ground-truth edited-attribute accuracy and "
        "preservation read by the domain encoder; PSNR / LPIPS tgt = distance to exact renders of the "
        "ground-truth target; success = finite, not empty, not exploded (see below; diverged runs count as failures "
        "and have no metrics); η = the perturbation used (auto for pnr); s/edit = seconds of the edit itself "
        "(η search + edit + revise; pnr_norevise: without the revise time), evaluation and source fit excluded, "
        "averaged over the GPU records only (a variant run only on the CPU so far shows its CPU time, marked).",
        "",
        "Settings (preset, steps, overrides, device, torch): "
        + "; ".join(f"`{p}` {st} {ov} on {d}, torch {t}" for p, st, ov, d, t in settings) if settings
        else "No jobs finished yet.",
        "",
        _reference_line(recs),
        "",
        _sanity_note(recs) if recs else "",
        "",
        "## All edit types",
        "",
        markdown_table(recs, None, expected),
    ]
    parts += ["", claims_section(recs)]
    for t in TYPES:
        parts += ["", f"## {t}", "", markdown_table(recs, t, expected)]
    if a.figure:  # (re)draw it from the thumbnails, next to the markdown, and link it
        fig = (Path(a.md).parent if a.md else Path(".")) / a.figure
        thumbs = Path(a.jsonl).parent / "thumbs"
        if thumbs.is_dir() and any(thumbs.iterdir()):
            cmd_figure(argparse.Namespace(jsonl=a.jsonl, thumbs=str(thumbs), out=str(fig), per_type=2, views=2,
                                          methods=None, split=a.split))
        parts += ["", "## Figure", "", "Rows: the first test edits of each type with thumbnails; columns: the "
                  "fitted source, each method with thumbnails so far (seed 0), the exact ground-truth target; "
                  "each cell: the first two of the 4 thumbnail views (90° apart on the eval orbit, 64 px).", "",
                  f"![source | methods | ground truth]({a.figure})"]
    text = "\n".join(p for i, p in enumerate(parts) if p or (i and parts[i - 1])) + "\n"  # no double blanks
    if a.md:
        Path(a.md).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(a.md, text)
        print(f"quality: wrote {a.md} ({len(recs)} of {n_exp} results)")
    else:
        print(text)
    if a.readme:
        n = update_readme_tables(Path(a.readme), text)
        print(f"quality: replaced {n} tables in {a.readme}")
    return 0


README_SECTION = "### Quality benchmark"
README_TABLES = ("| method | jobs |", "| seed 0, ", "| seed 0, ")  # the all-types table, then the two paired ones


def _table_at(lines: list[str], start: int, head: str) -> tuple[int, int]:
    """(first, end) line indices of the first markdown table at or after `start` whose header begins `head`."""
    i = next((i for i in range(start, len(lines)) if lines[i].startswith(head)), None)
    if i is None:
        raise SystemExit(f"quality: no table starting {head!r} found")
    j = i
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    return i, j


def update_readme_tables(readme: Path, md: str) -> int:
    """Replace, in README's quality section, the averaged table and the two paired tables with the ones just
    generated (same order as in docs/quality.md), so README's numbers come from the same command."""
    from pnr.io import atomic_write_text

    doc, rd = md.splitlines(), readme.read_text().splitlines()
    sec = next((i for i, l in enumerate(rd) if l.startswith(README_SECTION)), None)
    if sec is None:
        raise SystemExit(f"quality: {readme} has no '{README_SECTION}' section")
    d_at = r_at = 0
    for head in README_TABLES:
        d0, d1 = _table_at(doc, d_at, head)
        r0, r1 = _table_at(rd, max(r_at, sec), head)
        rd[r0:r1] = doc[d0:d1]
        d_at, r_at = d1, r0 + (d1 - d0)
    atomic_write_text(readme, "\n".join(rd) + "\n")
    return len(README_TABLES)


def cmd_left(a) -> int:
    left = jobs_left(set(read_results(Path(a.jsonl))), a.split, a.seeds)
    n = sum(left.values())
    print("jobs left: " + (", ".join(f"{v} {k}" for v, k in left.items()) if left else "none") + f" (total {n})")
    if n and a.rate:
        print(f"at {a.rate:g} jobs per device-minute: ~{n / a.rate:.1f} device-minutes")
    return 0



def cmd_figure(a) -> int:
    from PIL import Image

    from pnr.io import save_png

    thumbs = Path(a.thumbs) if a.thumbs else Path(a.jsonl).parent / "thumbs"
    cols = ["source", *[v for v in (a.methods.split(",") if a.methods else VARIANTS)], "target"]
    es = select_edits(a.split)
    rows = []
    if getattr(a, "edits", None):  # (`table --figure` calls this with its own arguments)
        by_id = {e.id: e for e in es}
        rows = [by_id[i] for i in a.edits.split(",") if i in by_id and (thumbs / i / "source.png").is_file()]
    else:
        for t in TYPES:
            have = [e for e in es if e.edit_type == t and (thumbs / e.id / "source.png").is_file()]
            rows += have[:a.per_type]
    if not rows:
        raise SystemExit(f"quality figure: no thumbnails under {thumbs} (run `quality.py run` first)")
    # method columns without any thumbnail yet (e.g. variants not run so far) are left out
    cols = [c for c in cols if c in ("source", "target") or any((thumbs / e.id / f"{c}.png").is_file() for e in rows)]
    v, s = a.views, THUMB_RES
    cell_w = v * s
    img = _labelled_grid(rows, cols, cell_w, s)
    for i, e in enumerate(rows):
        y = GRID_HEAD + i * (s + GRID_PAD)
        for j, c in enumerate(cols):
            p = thumbs / e.id / f"{c}.png"
            if not p.is_file():
                continue
            strip = Image.open(p).convert("RGB")
            img.paste(strip.crop((0, 0, cell_w, s)), (GRID_LABEL + j * (cell_w + GRID_PAD), y))
    save_png(a.out, np.asarray(img))
    print(f"quality: wrote {a.out} ({len(rows)} edits x {len(cols)} columns)")
    if getattr(a, "video", None):
        turntable_grid(thumbs, rows, cols, a.video)
    return 0


GRID_LABEL, GRID_HEAD, GRID_PAD = 150, 16, 2  # figure grids: label column, header row, gap between cells (px)


def _labelled_grid(rows: list, cols: list[str], cell_w: int, cell_h: int, even: bool = False):
    """A white PIL image with the column names on top and each row's edit id and prompt on the left."""
    from PIL import Image, ImageDraw

    W, H = GRID_LABEL + len(cols) * (cell_w + GRID_PAD), GRID_HEAD + len(rows) * (cell_h + GRID_PAD)
    if even:
        W, H = W + W % 2, H + H % 2
    img = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for j, c in enumerate(cols):
        draw.text((GRID_LABEL + j * (cell_w + GRID_PAD) + 2, 2), c.replace("pnr_fixed_", "eta="), fill=(0, 0, 0))
    for i, e in enumerate(rows):
        y = GRID_HEAD + i * (cell_h + GRID_PAD)
        draw.text((2, y + 2), e.id, fill=(0, 0, 0))
        draw.text((2, y + 16), e.prompt[:24], fill=(60, 60, 60))
    return img


def turntable_grid(thumbs: Path, rows: list, cols: list[str], out: str) -> None:
    """MP4: one turntable per cell (<thumbs>/<edit>/<col>.npz, uint8 [V, H, W, 3]) turning together, a row per edit,
    the columns that have turntables, labelled. Why: a pose or an added object is judged turning, not in 4 stills."""
    from PIL import Image

    from pnr.io import save_video

    cols = [c for c in cols if all((thumbs / e.id / f"{c}.npz").is_file() for e in rows)]
    if not cols:
        raise SystemExit(f"quality figure --video: no column has turntables for every row under {thumbs} "
                         "(run `quality.py run --turntables`)")
    cells = {(e.id, c): np.load(thumbs / e.id / f"{c}.npz")["frames"] for e in rows for c in cols}
    n = min(v.shape[0] for v in cells.values())
    s = max(v.shape[1] for v in cells.values())
    base = _labelled_grid(rows, cols, s, s, even=True)  # H.264 wants even sizes
    frames = []
    for k in range(n):
        img = base.copy()
        for i, e in enumerate(rows):
            for j, c in enumerate(cols):
                f = Image.fromarray(cells[(e.id, c)][k]).resize((s, s))
                img.paste(f, (GRID_LABEL + j * (s + GRID_PAD), GRID_HEAD + i * (s + GRID_PAD)))
        frames.append(np.asarray(img))
    path = save_video(out, frames, fps=8)
    print(f"quality: wrote {path} ({len(rows)} edits x {len(cols)} columns, {n} frames)")

