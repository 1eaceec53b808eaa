"""bench/gpu/choose_tag.py: the predeclared rule picks the tag that keeps edit accuracy and lowers LPIPS."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("choose_tag", ROOT / "bench" / "gpu" / "choose_tag.py")
choose = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(choose)


def _rec(edit: str, seed: int, tag: str, acc: float, lpips: float, ok: bool = True, scale: float | None = None):
    over = {"render_graphs": True} | ({} if scale is None else {"identity_scale": scale})
    return {"edit_id": edit, "seed": seed, "variant": f"pnr+{tag}", "config_overrides": over, "success": ok,
            "metrics": {"edited_attr_acc": acc, "lpips_to_source": lpips} if ok else None}


def _write(path: Path, recs: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


def test_picks_the_scale_that_keeps_accuracy_and_lowers_lpips(tmp_path):
    recs = []
    for e in ("shape_01", "pose_01", "object_01"):
        for s in (0, 1):
            recs += [_rec(e, s, "ref", 1.0, 0.12), _rec(e, s, "id03", 1.0, 0.11, scale=0.3),
                     _rec(e, s, "id1", 0.0, 0.05, scale=1.0)]  # id1: closest to the source, but edits nothing
    assert choose.main(_write(tmp_path / "q.jsonl", recs)) == "--set identity_scale=0.3"


def test_keeps_the_default_when_the_gain_is_within_the_margin_or_runs_fail(tmp_path):
    recs = []
    for i, e in enumerate(("shape_01", "pose_01", "object_01", "shape_02")):
        recs += [_rec(e, 0, "ref", 1.0, 0.120), _rec(e, 0, "id03", 1.0, 0.118, scale=0.3),  # gain 0.002 < 0.003
                 _rec(e, 0, "id05", 1.0, 0.100, ok=i >= 2, scale=0.5)]  # 2 more failed runs than ref
    assert choose.main(_write(tmp_path / "q.jsonl", recs)) == ""  # ref: today's defaults
