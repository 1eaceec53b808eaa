import json
from collections import Counter

from pnr.cli import main
from pnr.data.domain.benchmark import load_benchmark, make_benchmark
from pnr.data.domain.grammar import (EDIT_TYPE_ATTRS, EDIT_TYPES, apply_edit, caption, differing_attrs,
                                     parse_caption, parse_phrase)


def test_counts_split_and_determinism():
    edits = make_benchmark(0)
    assert len(edits) == 150
    assert Counter(e.edit_type for e in edits) == {t: 30 for t in EDIT_TYPES}
    assert Counter((e.edit_type, e.split) for e in edits) == {**{(t, "dev"): 10 for t in EDIT_TYPES},
                                                              **{(t, "test"): 20 for t in EDIT_TYPES}}
    assert len({e.id for e in edits}) == 150
    assert [e.to_dict() for e in edits] == [e.to_dict() for e in make_benchmark(0)]
    assert [e.to_dict() for e in edits] != [e.to_dict() for e in make_benchmark(1)]


def test_target_differs_in_exactly_the_named_attribute():
    for e in make_benchmark(0):
        diff = differing_attrs(e.source, e.target)
        assert len(diff) == 1 and diff[0] in EDIT_TYPE_ATTRS[e.edit_type], (e.id, diff)
        # prompts name only the change, and parse to it
        assert set(parse_phrase(e.prompt)) == set(diff), (e.id, e.prompt)
        assert apply_edit(e.source, e.prompt) == e.target
        assert e.source_caption == caption(e.source) and e.target_caption == caption(e.target)
        assert parse_caption(e.target_caption) == parse_caption(e.source_caption).__class__(
            **{**parse_caption(e.source_caption).to_dict(), diff[0]: getattr(e.target, diff[0])})
        # continuous jitter is kept: the ground truth is the same object, edited
        assert (e.source.j_hue, e.source.j_height, e.source.j_pattern) == (e.target.j_hue, e.target.j_height, e.target.j_pattern)


def test_pose_edits_on_figures_with_asymmetric_poses():
    pose = [e for e in make_benchmark(0) if e.edit_type == "pose"]
    assert all(e.source.category == "figure" for e in pose)
    targets = Counter(e.target.pose for e in pose)
    assert targets["left arm raised"] >= 3 and targets["right arm raised"] >= 3 and targets["sitting"] >= 3
    objs = [e for e in make_benchmark(0) if e.edit_type == "object"]
    assert all(e.source.accessory == "none" and e.target.accessory != "none" for e in objs)
    assert len({e.source.category for e in objs}) >= 4


def test_cli_writes_loadable_benchmark(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["data", "benchmark", "--out", str(out)]) == 0
    assert "test  20" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert len(doc["edits"]) == 150 and "never used for tuning" in doc["note"]
    loaded = load_benchmark(out)
    assert [e.to_dict() for e in loaded] == [e.to_dict() for e in make_benchmark(0)]


def test_dev2_covers_every_prompt_kind_and_holds_no_test_object():
    """The dev split's every-third rule sees 2 of the 6 poses; dev2 is a tuning pool with every prompt kind that
    the test split has, none of whose sources or targets is a test edit's."""
    import json

    from pnr.data.domain.benchmark import make_dev2

    bench, dev2 = make_benchmark(0), make_dev2(0)
    assert [e.to_dict() for e in dev2] == [e.to_dict() for e in make_dev2(0)]  # deterministic
    assert {e.split for e in dev2} == {"dev2"} and len(dev2) == 150
    assert not {e.id for e in dev2} & {e.id for e in bench}
    test = [e for e in bench if e.split == "test"]
    key = lambda s: json.dumps(s.to_dict(), sort_keys=True)  # noqa: E731
    test_objects = {key(x) for e in test for x in (e.source, e.target)}
    assert not {key(x) for e in dev2 for x in (e.source, e.target)} & test_objects
    for t in {e.edit_type for e in test}:
        dev_prompts = {e.prompt for e in bench if e.split == "dev" and e.edit_type == t}
        test_prompts = {e.prompt for e in test if e.edit_type == t}
        dev2_prompts = {e.prompt for e in dev2 if e.edit_type == t}
        if t in ("pose", "object"):  # the gap dev2 exists for
            assert not test_prompts <= dev_prompts
        if t != "color":  # colours are drawn at random: every test prompt need not recur
            assert test_prompts <= dev2_prompts, (t, test_prompts - dev2_prompts)
    for e in dev2:
        assert e.target.to_dict() != e.source.to_dict()
