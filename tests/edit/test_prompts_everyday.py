"""Prompts as people type them, with the built-in prior (issue 18, item 3): each everyday phrasing must give
exactly this conditioning text; filler words are ignored, everyday words map to the domain's values."""

import json

import pytest

from pnr.data.domain import grammar as G
from pnr.data.domain.grammar import differing_attrs, normalize_phrase, parse_caption, parse_phrase, vocabulary
from pnr.edit.prompts import prompt_words, resolve_prompts
from pnr.errors import PromptError
from pnr.priors.builtin.model import PriorConfig
from pnr.priors.builtin.prior import BuiltinPrior

MUG, FIG = "a red mug", "a red figure standing"

# (source caption, prompt as typed, the conditioning text it must give)
EVERYDAY = [
    # colour
    (MUG, "make it blue", "a blue mug"),
    (MUG, "paint it navy, please", "a blue mug"),
    (MUG, "can you make it a bit more green?", "a green mug"),
    ("a white mug", "change the colour to crimson", "a red mug"),
    (MUG, "change it from red to yellow", "a yellow mug"),
    (MUG, "make it grey-ish", "a gray mug"),
    (MUG, "light purple please", "a purple mug"),
    (MUG, "I want it golden", "a yellow mug"),
    ("a green vase", "turn it lavender", "a purple vase"),
    # pattern
    (MUG, "covered in polka dots", "a red dotted mug"),
    (MUG, "with polka dots", "a red dotted mug"),
    (MUG, "give it stripes", "a red striped mug"),
    (MUG, "add some pinstripes", "a red striped mug"),
    (MUG, "make it plaid", "a red checkered mug"),
    ("a blue vase", "a checkerboard pattern please", "a blue checkered vase"),
    ("a red striped mug", "remove the stripes", "a red mug"),
    ("a red dotted mug", "make it solid", "a red mug"),
    ("a red striped mug", "change the stripes to dots", "a red dotted mug"),
    # shape: height, width, profile
    (MUG, "make it much taller", "a tall red mug"),
    (MUG, "make it shorter", "a short red mug"),
    (MUG, "make it a little squat", "a short red mug"),
    ("a tall blue lamp", "less tall", "a short blue lamp"),
    (MUG, "a bit wider", "a wide red mug"),
    (MUG, "thinner please", "a narrow red mug"),
    (MUG, "make it skinny", "a narrow red mug"),
    (MUG, "not as wide", "a narrow red mug"),
    (MUG, "boxier", "a square red mug"),
    ("a square green vase", "rounder", "a green vase"),
    (FIG, "make him taller", "a tall red figure standing"),
    # pose
    (FIG, "have it sit down", "a red figure sitting"),
    (FIG, "make him sit", "a red figure sitting"),
    (FIG, "wave hello", "a red figure with the right arm raised"),
    (FIG, "raise both arms", "a red figure with arms raised"),
    (FIG, "hands up!", "a red figure with arms raised"),
    (FIG, "put its hands in the air", "a red figure with arms raised"),
    (FIG, "make it cheer", "a red figure with arms raised"),
    (FIG, "arms wide open", "a red figure with arms out"),
    (FIG, "t-pose", "a red figure with arms out"),
    (FIG, "raise the left hand", "a red figure with the left arm raised"),
    ("a red figure with arms raised", "lower its arms", "a red figure standing"),
    ("a red figure sitting", "have her stand up please", "a red figure standing"),
    # added object
    (FIG, "put a hat on it", "a red figure standing, wearing a hat"),
    (FIG, "give him a scarf", "a red figure standing, wearing a scarf"),
    (FIG, "let it hold a football", "a red figure standing, holding a ball"),
    (FIG, "wearing a top hat", "a red figure standing, wearing a hat"),
    (MUG, "stick a straw in it", "a red mug with a straw"),
    ("a blue vase", "give it a rose", "a blue vase with a flower"),
    ("a brown table", "put a ball on it", "a brown table with a ball"),
    ("a red figure standing, wearing a hat", "take off the hat", "a red figure standing"),
    ("a red figure standing, wearing a hat", "remove the hat please", "a red figure standing"),
    # category words
    (MUG, "turn it into a vase", "a red vase"),
    ("a green vase", "make it a coffee cup", "a green mug"),
    (FIG, "turn the man into a chair", "a red chair"),
    ("a blue mug", "make it a person", "a blue figure standing"),
    ("a white chair", "turn it into a desk", "a white table"),
    (MUG, "make it a tall lamp", "a tall red lamp"),
    # more than one attribute
    (MUG, "make it much taller and navy", "a tall blue mug"),
]


@pytest.fixture(scope="module")
def prior():
    return BuiltinPrior(PriorConfig.tiny(vocabulary()))


def test_the_table_is_large_and_covers_every_attribute():
    assert len(EVERYDAY) >= 40
    changed = set()
    for src, prompt, want in EVERYDAY:
        changed |= set(differing_attrs(parse_caption(src), parse_caption(want)))
    assert changed == {"category", "color", "pattern", "height", "width", "profile", "pose", "accessory"}


@pytest.mark.parametrize("src,prompt,want", EVERYDAY, ids=[p for _, p, _ in EVERYDAY])
def test_everyday_prompt_gives_this_conditioning_text(prior, src, prompt, want):
    text, src_text = resolve_prompts(prior, prompt, src, "pnr")
    assert text == want
    assert src_text == src
    w = normalize_phrase(prompt)
    assert w.used and set(w.used).isdisjoint(w.ignored)
    assert parse_phrase(w.text) == w.attributes  # the normalised text says the same as the prompt
    assert set(G.tokenize(w.text)) <= set(vocabulary())


@pytest.mark.parametrize("prompt,want", [
    ("paint it navy please", "in blue"), ("covered in polka dots", "dotted"), ("make it much taller", "tall"),
    ("put its hands in the air", "with arms raised"), ("give it a rose", "with a flower"),
    ("have it sit down", "sitting"), ("a blue mug", "a blue mug"), ("wearing a hat", "wearing a hat"),
])
def test_without_a_source_caption_the_prior_reads_the_phrase_it_was_trained_on(prior, prompt, want):
    assert resolve_prompts(prior, prompt, None, "pnr") == (want, None)


def test_which_words_were_used_and_ignored(prior):
    w = prompt_words(prior, "Make it much taller, please")
    assert w["used"] == ["taller"] and w["ignored"] == ["make", "it", "much", "please"]
    assert w["attributes"] == {"height": "tall"} and w["text"] == "tall"
    w = prompt_words(prior, "paint it navy")
    assert w["used"] == ["navy"] and w["mapped"] == {"navy": "blue"}
    w = normalize_phrase("less tall")
    assert w.used == ("less tall",) and w.mapped == {"less tall": "short"}
    w = normalize_phrase("a blue mug")  # vocabulary only: the text is the prompt as written
    assert w.text == "a blue mug" and w.used == ("blue", "mug") and w.ignored == ("a",) and w.mapped == {}
    assert prompt_words(object(), "paint it navy") is None  # other priors get the prompt as written


@pytest.mark.parametrize("src,prompt,msg", [
    (MUG, "make it sparkly", r"'sparkly' \(close: "),  # still unknown: today's error with close words
    (MUG, "in black please", r"'black' \(close: "),
    (MUG, "make it navvy", r"'navvy' \(close: navy"),  # close words include everyday words
    (MUG, "please do it", "names no attribute of the built-in domain; ignored: please, do, it"),
    (None, "please do it", "names nothing the built-in domain knows"),
    (MUG, "paint it navy and green", "two values of color"),
    (MUG, "make it sit down", "pose applies to: figure"),
])
def test_prompts_that_still_name_nothing_known_are_errors(prior, src, prompt, msg):
    with pytest.raises(PromptError, match=msg):
        resolve_prompts(prior, prompt, src, "pnr")


def test_everyday_words_are_outside_the_vocabulary():
    """The prior's text encoder reads vocabulary words only: everyday words never reach it, and none of them
    shadows a vocabulary word (a caption's words keep their meaning)."""
    vocab = set(vocabulary())
    assert vocab.isdisjoint(G._SYNONYMS) and vocab.isdisjoint(G._FILLERS)
    assert set(G._SYNONYMS).isdisjoint(G._FILLERS - {"less"})
    for word, target in G._SYNONYMS.items():
        assert set(target.split()) <= vocab, word
    assert len(vocabulary()) == 100  # unchanged: the shipped prior's tokenizer


def test_edit_json_records_the_words_used(tmp_path):
    from pnr.cli import main
    from pnr.field.checkpoint import save_checkpoint
    from pnr.field.config import FieldConfig
    from pnr.field.field import Field
    from pnr.priors.builtin.prior import save_prior
    from tests.edit.test_cli_edit import FAST

    save_checkpoint(tmp_path / "src", Field(FieldConfig.tiny(), seed=1), None, {"caption": "a red mug"})
    prior = save_prior(BuiltinPrior(PriorConfig.tiny(vocabulary())), tmp_path / "prior.safetensors")
    out = tmp_path / "out"
    rc = main(["edit", str(tmp_path / "src"), "paint it navy, please", "--out", str(out), "--prior", str(prior),
               "--eta", "0", *FAST, "--turntable-frames", "0"])
    assert rc == 0
    rec = json.loads((out / "edit.json").read_text())
    assert rec["prompt"] == "paint it navy, please" and rec["conditioning_text"] == "a blue mug"
    assert rec["prompt_words"] == {"text": "in blue", "used": ["navy"], "ignored": ["paint", "it", "please"],
                                   "mapped": {"navy": "blue"}, "attributes": {"color": "blue"}}
