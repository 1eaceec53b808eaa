"""The built-in object domain's grammar: structured specs <-> captions, edit phrases, vocabulary.

A spec names discrete attributes (what captions and edit prompts talk about) plus small continuous
jitter (proportions, hue) that captions never mention, so a prior trained on renders learns a
distribution per caption instead of a lookup table (../shared/DESIGN.md, "The prior problem").

Caption grammar (deterministic, defaults are not spoken):
    a [height] [width] [square] COLOR [PATTERN] CATEGORY [POSE] [ACCESSORY]
e.g. "a blue striped mug", "a tall red figure sitting, wearing a hat", "a square green vase with a flower".
Edit prompts name only the change, as the paper's do: "sitting", "in blue", "wearing a hat", "striped".
"""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import asdict, dataclass, fields, replace

from pnr.errors import DataError, PromptError

CATEGORIES = ("mug", "vase", "lamp", "table", "chair", "figure")

# Named colours (sRGB in [0,1]); hue jitter is applied around these in render.py.
COLORS = {
    "red": (0.85, 0.12, 0.10), "orange": (0.95, 0.50, 0.08), "yellow": (0.95, 0.85, 0.15),
    "green": (0.15, 0.62, 0.20), "blue": (0.12, 0.30, 0.85), "purple": (0.50, 0.20, 0.70),
    "pink": (0.95, 0.50, 0.70), "brown": (0.50, 0.30, 0.12), "white": (0.92, 0.92, 0.90),
    "gray": (0.50, 0.50, 0.52),
}
PATTERNS = ("plain", "striped", "checkered", "dotted")
HEIGHTS = ("medium", "tall", "short")
WIDTHS = ("medium", "wide", "narrow")
PROFILES = ("round", "square")
POSES = ("standing", "sitting", "arms raised", "arms out", "left arm raised", "right arm raised")
ACCESSORIES = ("none", "hat", "scarf", "ball", "flower", "straw")

ATTRIBUTES: dict[str, list[str]] = {
    "category": list(CATEGORIES),
    "color": list(COLORS),
    "pattern": list(PATTERNS),
    "height": list(HEIGHTS),
    "width": list(WIDTHS),
    "profile": list(PROFILES),
    "pose": list(POSES),
    "accessory": list(ACCESSORIES),
}
EDIT_TYPES = ("color", "pattern", "shape", "pose", "object")
# which spec attributes each edit type may change
EDIT_TYPE_ATTRS = {"color": ("color",), "pattern": ("pattern",), "shape": ("height", "width", "profile"),
                   "pose": ("pose",), "object": ("accessory",)}

# attributes each category has (others are "" in its spec)
CATEGORY_ATTRS = {
    "mug": ("height", "width", "profile"), "vase": ("height", "width", "profile"),
    "lamp": ("height", "width", "profile"), "table": ("height", "width", "profile"),
    "chair": ("height", "width", "profile"), "figure": ("height", "width", "pose"),
}
CATEGORY_ACCESSORIES = {
    "mug": ("straw", "flower"), "vase": ("flower",), "lamp": (), "table": ("ball", "flower"),
    "chair": ("ball",), "figure": ("hat", "scarf", "ball"),
}
DEFAULTS = {"pattern": "plain", "height": "medium", "width": "medium", "profile": "round",
            "pose": "standing", "accessory": "none"}

POSE_PHRASES = {"standing": "standing", "sitting": "sitting", "arms raised": "with arms raised",
                "arms out": "with arms out", "left arm raised": "with the left arm raised",
                "right arm raised": "with the right arm raised"}
FIGURE_ACCESSORY_PHRASES = {"hat": "wearing a hat", "scarf": "wearing a scarf", "ball": "holding a ball"}
OBJECT_ACCESSORY_PHRASES = {"ball": "with a ball", "flower": "with a flower", "straw": "with a straw"}

# word -> (attribute, value) for words that name a value on their own
_WORD_VALUES: dict[str, tuple[str, str]] = {
    **{c: ("category", c) for c in CATEGORIES}, "cup": ("category", "mug"), "person": ("category", "figure"),
    **{c: ("color", c) for c in COLORS}, "grey": ("color", "gray"),
    "plain": ("pattern", "plain"), "striped": ("pattern", "striped"), "stripes": ("pattern", "striped"),
    "stripy": ("pattern", "striped"), "checkered": ("pattern", "checkered"), "checked": ("pattern", "checkered"),
    "checks": ("pattern", "checkered"), "checkerboard": ("pattern", "checkered"), "dotted": ("pattern", "dotted"),
    "dots": ("pattern", "dotted"), "spotted": ("pattern", "dotted"), "polka": ("pattern", "dotted"),
    "tall": ("height", "tall"), "taller": ("height", "tall"), "short": ("height", "short"),
    "shorter": ("height", "short"), "wide": ("width", "wide"), "wider": ("width", "wide"),
    "narrow": ("width", "narrow"), "narrower": ("width", "narrow"), "thin": ("width", "narrow"),
    "slim": ("width", "narrow"), "round": ("profile", "round"), "rounded": ("profile", "round"),
    "cylindrical": ("profile", "round"), "square": ("profile", "square"), "boxy": ("profile", "square"),
    "sitting": ("pose", "sitting"), "seated": ("pose", "sitting"), "sit": ("pose", "sitting"),
    "standing": ("pose", "standing"), "stand": ("pose", "standing"), "waving": ("pose", "right arm raised"),
    "outstretched": ("pose", "arms out"),
    "hat": ("accessory", "hat"), "cap": ("accessory", "hat"), "scarf": ("accessory", "scarf"),
    "ball": ("accessory", "ball"), "flower": ("accessory", "flower"), "flowers": ("accessory", "flower"),
    "straw": ("accessory", "straw"),
}
# words that carry meaning only together (poses, negation) or none at all
_FUNCTION_WORDS = ("a an the in with and it its make turn into change to be is of on wearing holding "
                   "has have having arm arms raised raising up out spread left right one both hand "
                   "no without colored coloured pattern shaped").split()


def vocabulary() -> list[str]:
    """Every word a caption or edit phrase may contain (the built-in text encoder is word-level over this)."""
    return sorted(set(_WORD_VALUES) | set(_FUNCTION_WORDS))


_VOCAB = frozenset(vocabulary())


@dataclass(frozen=True)
class ObjectSpec:
    """One procedural object. Discrete attributes are spoken by captions; `j_*` jitter in [-1, 1] is not.
    `profile` is "" for the figure, `pose` is "" for everything but the figure."""

    category: str
    color: str
    pattern: str = "plain"
    height: str = "medium"
    width: str = "medium"
    profile: str = "round"
    pose: str = ""
    accessory: str = "none"
    j_height: float = 0.0  # proportion jitter (about ±8% in render.py)
    j_width: float = 0.0
    j_hue: float = 0.0  # hue / tone jitter of the named colour
    j_tone: float = 0.0
    j_pattern: float = 0.0  # pattern frequency / phase jitter

    def __post_init__(self):
        # category-dependent fields: "" where the category lacks the attribute, its default where unset
        if self.category in CATEGORY_ATTRS:
            own = CATEGORY_ATTRS[self.category]
            for attr in ("height", "width", "profile", "pose"):
                v = getattr(self, attr)
                if attr not in own and v == DEFAULTS[attr]:
                    object.__setattr__(self, attr, "")
                elif attr in own and v == "":
                    object.__setattr__(self, attr, DEFAULTS[attr])

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "ObjectSpec":
        names = {f.name for f in fields(ObjectSpec)}
        bad = sorted(set(d) - names)
        if bad:
            raise DataError(f"unknown object spec field(s) {bad}; valid fields: {sorted(names)}")
        if "category" not in d or "color" not in d:
            raise DataError(f"object spec {d} needs at least 'category' and 'color'")
        d = dict(d)
        cat = d["category"]
        _check_value("category", cat)
        for k in ("j_height", "j_width", "j_hue", "j_tone", "j_pattern"):
            if k in d:
                d[k] = float(d[k])
        spec = ObjectSpec(**d)
        validate(spec)
        return spec


def _check_value(attr: str, value: str, exc=DataError) -> None:
    if value not in ATTRIBUTES[attr]:
        raise exc(f"unknown {attr} {value!r}; valid {attr} values: {', '.join(ATTRIBUTES[attr])}")


def validate(spec: ObjectSpec, exc=DataError) -> ObjectSpec:
    """Raise `exc` naming the bad value and the valid ones if `spec` is not a well-formed object."""
    _check_value("category", spec.category, exc)
    _check_value("color", spec.color, exc)
    _check_value("pattern", spec.pattern, exc)
    own = CATEGORY_ATTRS[spec.category]
    for attr in ("height", "width", "profile", "pose"):
        v = getattr(spec, attr)
        if attr in own:
            _check_value(attr, v, exc)
        elif v != "":
            owners = [c for c in CATEGORIES if attr in CATEGORY_ATTRS[c]]
            raise exc(f"a {spec.category} has no {attr} (got {v!r}); {attr} applies to: {', '.join(owners)}")
    if spec.accessory != "none" and spec.accessory not in CATEGORY_ACCESSORIES[spec.category]:
        _check_value("accessory", spec.accessory, exc)
        valid = ", ".join(("none",) + CATEGORY_ACCESSORIES[spec.category])
        raise exc(f"a {spec.category} cannot have accessory {spec.accessory!r}; valid for a {spec.category}: {valid}")
    return spec


def _norm_attrs(category: str, attrs: dict) -> dict:
    """Fill the category-dependent fields with their per-category defaults."""
    own = CATEGORY_ATTRS[category]
    out = dict(attrs)
    for attr in ("height", "width", "profile", "pose"):
        if attr not in own:
            out[attr] = ""
        elif not out.get(attr):
            out[attr] = DEFAULTS[attr]
    return out


def sample_spec(rng: random.Random | int) -> ObjectSpec:
    """A random object (seeded): uniform category and colour, defaults more often than not."""
    rng = random.Random(rng) if isinstance(rng, int) else rng
    cat = rng.choice(CATEGORIES)
    own = CATEGORY_ATTRS[cat]
    pick = lambda vals, w: rng.choices(vals, weights=w)[0]  # noqa: E731
    acc = CATEGORY_ACCESSORIES[cat]
    spec = ObjectSpec(
        category=cat,
        color=rng.choice(list(COLORS)),
        pattern=pick(PATTERNS, (4, 2, 2, 2)),
        height=pick(HEIGHTS, (2, 1, 1)) if "height" in own else "",
        width=pick(WIDTHS, (2, 1, 1)) if "width" in own else "",
        profile=pick(PROFILES, (3, 2)) if "profile" in own else "",
        pose=pick(POSES, (3, 2, 1, 1, 1, 1)) if "pose" in own else "",
        accessory=rng.choice(("none",) * len(acc) + acc) if acc else "none",
        j_height=rng.uniform(-1, 1), j_width=rng.uniform(-1, 1), j_hue=rng.uniform(-1, 1),
        j_tone=rng.uniform(-1, 1), j_pattern=rng.uniform(-1, 1),
    )
    return spec


def caption(spec: ObjectSpec) -> str:
    """Deterministic caption naming every non-default discrete attribute, e.g. 'a red figure sitting, wearing a hat'."""
    words = []
    if spec.height not in ("", "medium"):
        words.append(spec.height)
    if spec.width not in ("", "medium"):
        words.append(spec.width)
    if spec.profile == "square":
        words.append("square")
    words.append(spec.color)
    if spec.pattern != "plain":
        words.append(spec.pattern)
    words.append(spec.category)
    text = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
    if spec.category == "figure":
        text += " " + POSE_PHRASES[spec.pose or "standing"]
        if spec.accessory != "none":
            text += ", " + FIGURE_ACCESSORY_PHRASES[spec.accessory]
    elif spec.accessory != "none":
        text += " " + OBJECT_ACCESSORY_PHRASES[spec.accessory]
    return text


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _close_words(word: str) -> list[str]:
    """Known words spelled like `word`: the best match and any nearly as close (not every 50% match)."""
    ratio = lambda w: difflib.SequenceMatcher(None, word, w).ratio()  # noqa: E731
    close = difflib.get_close_matches(word, _VOCAB, n=4, cutoff=0.5)
    return [w for w in close if ratio(w) >= ratio(close[0]) - 0.1] if close else []


def check_words(text: str) -> list[str]:
    """Tokens of `text`; PromptError naming each unknown word and the closest known ones."""
    toks = tokenize(text)
    if not toks:
        raise PromptError(f"prompt {text!r} is empty")
    unknown = [t for t in toks if t not in _VOCAB]
    if unknown:
        hints = "; ".join(f"{w!r} (close: {', '.join(_close_words(w)) or 'none'})" for w in dict.fromkeys(unknown))
        raise PromptError(f"prompt {text!r} uses words the built-in domain does not know: {hints}. "
                          f"`pnr data vocab` lists the {len(_VOCAB)} known words")
    return toks


def parse_phrase(text: str) -> dict[str, str]:
    """Attributes named by a (partial) phrase: 'sitting' -> {'pose': 'sitting'}, 'in blue' -> {'color': 'blue'},
    'wearing a hat' -> {'accessory': 'hat'}, 'a tall red striped mug' -> {category, height, color, pattern}."""
    toks = check_words(text)
    s = set(toks)
    out: dict[str, str] = {}
    for t in toks:
        if t in _WORD_VALUES:
            attr, val = _WORD_VALUES[t]
            if attr == "pose" and "pose" in out:
                continue
            if attr in out and out[attr] != val:  # "in blue and green": say so rather than keep the last one
                raise PromptError(f"{text!r} names two values of {attr} ({out[attr]!r} and {val!r}); "
                                  f"an object of the built-in domain has one")
            out[attr] = val
    # poses spoken with several words
    raised = bool(s & {"raised", "raising", "up"})
    if s & {"left", "right"} and (raised or "arm" in s):
        out["pose"] = "left arm raised" if "left" in s else "right arm raised"
    elif "arms" in s and raised:
        out["pose"] = "arms raised"
    elif ("arms" in s and s & {"out", "spread"}) or "outstretched" in s:
        out["pose"] = "arms out"
    elif "one" in s and "arm" in s and raised:
        out["pose"] = "right arm raised"
    if s & {"without", "no"} and "accessory" in out:
        out["accessory"] = "none"
    return out


def parse_caption(text: str) -> ObjectSpec:
    """Inverse of `caption` on the discrete attributes (jitter at 0); also accepts any phrase naming a category."""
    attrs = parse_phrase(text)
    if "category" not in attrs:
        raise PromptError(f"caption {text!r} names no object; categories: {', '.join(CATEGORIES)}")
    if "color" not in attrs:
        raise PromptError(f"caption {text!r} names no colour; colours: {', '.join(COLORS)}")
    cat = attrs["category"]
    for attr in ("height", "width", "profile", "pose"):
        if attr in attrs and attr not in CATEGORY_ATTRS[cat]:
            owners = [c for c in CATEGORIES if attr in CATEGORY_ATTRS[c]]
            raise PromptError(f"caption {text!r}: a {cat} has no {attr} ({attrs[attr]!r}); "
                              f"{attr} applies to: {', '.join(owners)}")
    spec = ObjectSpec(**_norm_attrs(cat, attrs))
    return validate(spec, PromptError)


def apply_edit(spec: ObjectSpec, phrase: str) -> ObjectSpec:
    """`spec` with the attributes that `phrase` names replaced (jitter kept): the ground-truth edited object.
    Naming another category switches it and resets attributes the new category lacks."""
    attrs = parse_phrase(phrase)
    if not attrs:
        raise PromptError(f"edit phrase {phrase!r} names no attribute of the built-in domain "
                          f"(try e.g. 'in blue', 'striped', 'tall', 'sitting', 'wearing a hat')")
    cat = attrs.pop("category", spec.category)
    base = spec.to_dict()
    if cat != spec.category:
        base["category"] = cat
        for attr in ("height", "width", "profile", "pose"):
            if attr not in CATEGORY_ATTRS[cat]:
                base[attr] = ""
        if base["accessory"] not in CATEGORY_ACCESSORIES[cat]:
            base["accessory"] = "none"
    for attr in attrs:
        if attr in ("height", "width", "profile", "pose") and attr not in CATEGORY_ATTRS[cat]:
            owners = [c for c in CATEGORIES if attr in CATEGORY_ATTRS[c]]
            raise PromptError(f"edit {phrase!r} sets {attr} but a {cat} has none; {attr} applies to: {', '.join(owners)}")
    base.update(attrs)
    base = _norm_attrs(cat, base)
    return validate(ObjectSpec(**base), PromptError)


def spec_from_text(text: str) -> ObjectSpec:
    """A caption ('a red mug') or a JSON spec ('{"category": "mug", "color": "red"}')."""
    import json

    t = text.strip()
    if t.startswith("{"):
        try:
            d = json.loads(t)
        except json.JSONDecodeError as e:
            raise DataError(f"object spec {text!r} is not valid JSON: {e}") from None
        return ObjectSpec.from_dict(d)
    return parse_caption(t)


def differing_attrs(a: ObjectSpec, b: ObjectSpec) -> list[str]:
    """Discrete attributes on which two specs differ."""
    return [k for k in ATTRIBUTES if getattr(a, k) != getattr(b, k)]


__all__ = ["ObjectSpec", "CATEGORIES", "ATTRIBUTES", "EDIT_TYPES", "EDIT_TYPE_ATTRS", "COLORS", "CATEGORY_ATTRS",
           "CATEGORY_ACCESSORIES", "sample_spec", "caption", "parse_caption", "parse_phrase", "apply_edit",
           "vocabulary", "check_words", "validate", "spec_from_text", "differing_attrs", "replace"]
