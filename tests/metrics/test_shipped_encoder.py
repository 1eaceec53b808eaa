"""Known answers with the shipped domain encoder (pnr/assets/encoder) on exact renders."""

import pytest

from pnr.data.domain import grammar as G
from pnr.metrics.attributes import read_attributes
from pnr.metrics.clip_metrics import directional_similarity
from pnr.metrics.encoder import ASSET_DIR, get_encoder
from pnr.metrics.gt_metrics import exact_turntable, gt_metrics

pytestmark = pytest.mark.skipif(not (ASSET_DIR / "encoder.safetensors").is_file(), reason="no shipped encoder weights")

SPECS = [
    G.ObjectSpec("mug", "red"),
    G.ObjectSpec("vase", "blue", pattern="striped", height="tall"),
    G.ObjectSpec("figure", "green", pose="sitting", accessory="hat"),
    G.ObjectSpec("table", "yellow", profile="square"),
]


def _views(spec, n=4, res=64):
    return exact_turntable(spec, n, res=res, supersample=1)


def test_attribute_reading_matches_exact_renders():
    enc = get_encoder()
    for spec in SPECS:
        read = read_attributes(enc, _views(spec), spec, ("category", "color", "pattern", "height", "profile"))
        for attr, value in read.items():
            assert value == getattr(spec, attr), (spec, attr, value)


def test_pure_recolour_directional_similarity():
    enc = get_encoder()
    src_spec = G.ObjectSpec("mug", "red", j_height=0.3)
    src, edit = _views(src_spec), _views(G.apply_edit(src_spec, "in blue"))
    right = directional_similarity(enc, src, edit, "a red mug", "a blue mug")
    wrong = directional_similarity(enc, src, edit, "a red mug", "a green mug")
    unrelated = directional_similarity(enc, src, edit, "a red mug", "a red striped mug")
    assert right > 0.1
    assert right > wrong + 0.05 and right > unrelated + 0.05
    # an unchanged object has no image direction at all
    assert directional_similarity(enc, src, src.clone(), "a red mug", "a blue mug") == 0.0


def test_ground_truth_metrics_of_a_perfect_edit():
    enc = get_encoder()
    src_spec = G.ObjectSpec("mug", "red", pattern="dotted")
    tgt_spec = G.apply_edit(src_spec, "in blue")
    src, tgt = _views(src_spec), _views(tgt_spec)
    m = gt_metrics(enc, src, tgt, tgt, src_spec, tgt_spec)
    assert m["changed_attributes"] == ["color"]
    assert m["edited_attr_acc"] == 1.0 and m["preservation"] == 1.0
    assert m["psnr_to_target"] == float("inf") and m["lpips_to_target"] < 1e-7
    assert m["success"]
    # doing nothing fails the edited attribute but preserves the rest
    m0 = gt_metrics(enc, src, src, tgt, src_spec, tgt_spec)
    assert m0["edited_attr_acc"] == 0.0 and m0["psnr_to_target"] < 40
