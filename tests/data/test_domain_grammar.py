import random

import pytest

from pnr.data.domain.grammar import (ATTRIBUTES, CATEGORIES, CATEGORY_ACCESSORIES, CATEGORY_ATTRS, EDIT_TYPES,
                                     ObjectSpec, apply_edit, caption, check_words, differing_attrs, parse_caption,
                                     parse_phrase, replace, sample_spec, spec_from_text, validate, vocabulary)
from pnr.errors import DataError, PromptError


def _discrete(s: ObjectSpec) -> ObjectSpec:
    return replace(s, j_height=0.0, j_width=0.0, j_hue=0.0, j_tone=0.0, j_pattern=0.0)


def test_captions_deterministic_and_parse_back():
    rng = random.Random(123)
    seen = set()
    for _ in range(2000):
        s = sample_spec(rng)
        c = caption(s)
        assert c == caption(s) == caption(_discrete(s))  # jitter is never spoken
        assert parse_caption(c) == _discrete(s), c
        seen.add(s.category)
    assert seen == set(CATEGORIES)


def test_sampling_is_seeded_and_covers_all_values():
    a = [sample_spec(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert sample_spec(7) == a[0]
    rng = random.Random(0)
    specs = [sample_spec(rng) for _ in range(3000)]
    for attr, values in ATTRIBUTES.items():
        got = {getattr(s, attr) for s in specs}
        assert set(values) <= got, (attr, set(values) - got)
    for s in specs:
        validate(s)
        assert -1 <= s.j_hue <= 1


def test_example_captions():
    assert caption(ObjectSpec("mug", "blue", "striped")) == "a blue striped mug"
    assert caption(ObjectSpec("figure", "red", pose="sitting", accessory="hat")) == "a red figure sitting, wearing a hat"
    assert caption(ObjectSpec("vase", "orange", profile="square", accessory="flower")) == "a square orange vase with a flower"
    assert caption(ObjectSpec("figure", "orange", height="tall", pose="left arm raised")) == \
        "a tall orange figure with the left arm raised"


@pytest.mark.parametrize("phrase,expected", [
    ("sitting", {"pose": "sitting"}), ("in blue", {"color": "blue"}), ("wearing a hat", {"accessory": "hat"}),
    ("striped", {"pattern": "striped"}), ("with stripes", {"pattern": "striped"}), ("tall", {"height": "tall"}),
    ("with arms raised", {"pose": "arms raised"}), ("with the left arm raised", {"pose": "left arm raised"}),
    ("raising the right arm", {"pose": "right arm raised"}), ("with arms out", {"pose": "arms out"}),
    ("make it grey", {"color": "gray"}), ("with polka dots", {"pattern": "dotted"}), ("holding a ball", {"accessory": "ball"}),
    ("without a hat", {"accessory": "none"}), ("square", {"profile": "square"}),
])
def test_parse_phrase(phrase, expected):
    assert parse_phrase(phrase) == expected


def test_apply_edit_replaces_only_named_attribute():
    s = sample_spec(random.Random(5))
    s = replace(s, category="figure", pose="standing", profile="", accessory="none")
    t = apply_edit(s, "sitting")
    assert t.pose == "sitting" and differing_attrs(s, t) == ["pose"]
    assert (t.j_hue, t.j_height) == (s.j_hue, s.j_height)
    t2 = apply_edit(s, "in green" if s.color != "green" else "in red")
    assert differing_attrs(s, t2) == ["color"]
    # category switch resets attributes the new category lacks
    v = apply_edit(t, "vase")
    assert v.category == "vase" and v.pose == "" and v.profile == "round" and v.accessory == "none"


def test_errors_list_valid_values():
    with pytest.raises(PromptError, match="mug"):
        check_words("a red mugg")
    with pytest.raises(PromptError, match="pnr data vocab"):
        parse_phrase("make it sparkly")
    with pytest.raises(DataError, match="valid category values: mug, vase, lamp, table, chair, figure"):
        ObjectSpec.from_dict({"category": "boat", "color": "red"})
    with pytest.raises(DataError, match="valid color values: red"):
        ObjectSpec.from_dict({"category": "mug", "color": "teal"})
    with pytest.raises(DataError, match="valid fields"):
        ObjectSpec.from_dict({"category": "mug", "color": "red", "shine": 1})
    with pytest.raises(PromptError, match="pose applies to: figure"):
        apply_edit(ObjectSpec("mug", "red"), "sitting")
    with pytest.raises(PromptError, match="valid for a lamp: none"):
        apply_edit(ObjectSpec("lamp", "red"), "with a flower")
    with pytest.raises(PromptError, match="names no attribute"):
        apply_edit(ObjectSpec("lamp", "red"), "the")
    with pytest.raises(PromptError, match="names no object"):
        parse_caption("a red thing" .replace("thing", "one"))
    with pytest.raises(DataError, match="not valid JSON"):
        spec_from_text("{category")
    with pytest.raises(PromptError, match="two values of color"):  # was: the last colour won, silently
        parse_phrase("in blue and green")
    with pytest.raises(PromptError, match="two values of category"):
        parse_caption("a red mug on a table")
    assert parse_phrase("in gray, plain and gray") == {"color": "gray", "pattern": "plain"}  # repeats are fine


def test_spec_dict_roundtrip_and_json_text():
    rng = random.Random(2)
    for _ in range(50):
        s = sample_spec(rng)
        assert ObjectSpec.from_dict(s.to_dict()) == s
    assert spec_from_text('{"category": "figure", "color": "red"}') == ObjectSpec("figure", "red", pose="standing")


def test_vocabulary_covers_captions_and_constants():
    vocab = set(vocabulary())
    rng = random.Random(9)
    for _ in range(500):
        assert set(caption(sample_spec(rng)).replace(",", "").split()) <= vocab
    assert len(EDIT_TYPES) == 5
    for c in CATEGORIES:
        assert c in CATEGORY_ATTRS and c in CATEGORY_ACCESSORIES


def test_unknown_word_hints_are_the_close_ones_only():
    from pnr.data.domain.grammar import _close_words

    assert _close_words("purpel") == ["purple"] and _close_words("mugg") == ["mug"]
    assert _close_words("sittin") == ["sitting"] and _close_words("zzz") == []
