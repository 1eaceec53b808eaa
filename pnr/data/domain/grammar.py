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

# --- prompts as people type them (normalize_phrase) ------------------------------------------------
# Words outside the vocabulary only: a caption's words keep their meaning. Each everyday word stands for
# vocabulary word(s) that parse_phrase reads; a value's synonyms, comparatives and "-ish" forms.
_SYNONYMS: dict[str, str] = {
    **dict.fromkeys("navy azure cobalt sapphire cyan bluish blueish".split(), "blue"),
    **dict.fromkeys("crimson scarlet ruby cherry maroon burgundy reddish".split(), "red"),
    **dict.fromkeys("lime emerald jade olive mint greenish".split(), "green"),
    **dict.fromkeys("gold golden lemon mustard yellowish".split(), "yellow"),
    **dict.fromkeys("tangerine amber orangey orangish".split(), "orange"),
    **dict.fromkeys("violet lavender lilac plum purplish".split(), "purple"),
    **dict.fromkeys("magenta fuchsia salmon pinkish".split(), "pink"),
    **dict.fromkeys("tan beige chocolate bronze brownish".split(), "brown"),
    **dict.fromkeys("ivory cream snow whitish".split(), "white"),
    **dict.fromkeys("silver silvery charcoal slate grayish greyish".split(), "gray"),
    **dict.fromkeys("stripe stripey striping pinstripe pinstripes pinstriped banded".split(), "striped"),
    **dict.fromkeys("checker checkers chequered chessboard plaid gingham tartan".split(), "checkered"),
    **dict.fromkeys("dot spots spot spotty dotty speckled speckles polkadot polkadots".split(), "dotted"),
    **dict.fromkeys("solid unpatterned".split(), "plain"),
    **dict.fromkeys("tallest higher high".split(), "tall"),
    **dict.fromkeys("shortest lower low squat stubby stumpy".split(), "short"),
    **dict.fromkeys("widest broad broader fat fatter thick thicker chunky chunkier stout".split(), "wide"),
    **dict.fromkeys("narrowest thinner skinny skinnier slender slimmer".split(), "narrow"),
    **dict.fromkeys("rounder circular roundish".split(), "round"),
    **dict.fromkeys("squarer squared squarish boxier cube cubic cuboid blocky rectangular angular".split(), "square"),
    **dict.fromkeys("sits sat".split(), "sit"), **dict.fromkeys("stands stood upright".split(), "stand"),
    **dict.fromkeys("wave waves waved".split(), "waving"),
    **dict.fromkeys("raise raises lift lifts lifted lifting".split(), "raised"),
    **dict.fromkeys("cheer cheers cheering".split(), "arms raised"),
    **dict.fromkeys("stretch stretched stretching".split(), "spread"), "hands": "arms",
    **dict.fromkeys("hats beanie bowler fedora beret sombrero tophat".split(), "hat"),
    **dict.fromkeys("scarves scarfs muffler shawl".split(), "scarf"),
    **dict.fromkeys("balls football basketball soccerball beachball baseball".split(), "ball"),
    **dict.fromkeys("rose roses tulip tulips daisy daisies sunflower bouquet blossom bloom lily".split(), "flower"),
    "straws": "straw",
    **dict.fromkeys("remove removed removing rid lose minus off".split(), "without"), "not": "no",
    **dict.fromkeys("mugs cups teacup tumbler".split(), "mug"), **dict.fromkeys("vases jar urn vessel".split(), "vase"),
    **dict.fromkeys("lamps lampshade lantern".split(), "lamp"), **dict.fromkeys("tables desk".split(), "table"),
    **dict.fromkeys("chairs stool armchair".split(), "chair"),
    **dict.fromkeys("man woman guy girl boy kid child human figurine doll character mannequin".split(), "figure"),
}
# two-word phrases read as one (before the words alone)
_PAIRS: dict[tuple[str, str], str] = {("t", "pose"): "arms out", ("take", "off"): "without",
                                      ("get", "rid"): "without"}
# words that name nothing the domain can show: dropped when the rest of the prompt names the edit
_FILLERS = frozenset("""
    please pls kindly could can would will shall should you i we want wanted like love need let lets me us my our
    your him her his hers them their they he she this that these those thing object something s
    made makes making turned changed convert transform become becomes go get gets give gives giving put puts
    add adding place stick attach paint painted repaint recolor recolour color colour colors colours dye dyed
    shade tone hue coat coated cover covered covering decorate decorated patterned patterns style styled
    shape shapes look looks looking appear so very really much more lot lots bit little slightly somewhat quite
    rather extra super too even just now instead also all over entirely completely fully totally whole some
    new down for at by from as than then there here onto inside around top head neck hello hi bye goodbye do
    does are was being keep but or pose position posture hold holds carry carries carrying wear wears wore
    dress dressed sporting drinking coffee tea soccer beach tennis less light dark pale bright deep sky take
    version again same ish
""".split())
_ARM_WORDS = frozenset("arm arms hand hands".split())
# with arms in the prompt these mean a pose: "arms in the air", "hands up high", "arms wide open", "lower its arms"
_ARM_CONTEXT = {"air": "up", "high": "up", "higher": "up", "overhead": "up", "open": "out"}
_ARMS_DOWN = frozenset("down lower lowered lowering drop dropped".split())
_OPPOSITES = {"tall": "short", "short": "tall", "wide": "narrow", "narrow": "wide", "round": "square",
              "square": "round"}
_POSE_PARTS = frozenset("raised raising up left right arm arms hand one out spread outstretched".split())
_NEGATIONS = frozenset(("no", "without"))


@dataclass(frozen=True)
class PhraseWords:
    """What `normalize_phrase` made of a prompt: `text` (vocabulary words only, the prompt's order: what the
    built-in prior can read), `used` (the typed words that name the edit), `ignored` (typed words that name
    nothing), `mapped` (typed everyday word(s) -> the vocabulary word(s) read instead), `attributes`."""

    text: str
    used: tuple[str, ...]
    ignored: tuple[str, ...]
    mapped: dict
    attributes: dict

    def to_dict(self) -> dict:
        return {"text": self.text, "used": list(self.used), "ignored": list(self.ignored),
                "mapped": dict(self.mapped), "attributes": dict(self.attributes)}


def _value_of(word: str) -> str | None:
    """The shape value a (vocabulary or everyday) word names, for "less tall" / "not as wide"."""
    w = word if word in _VOCAB else _SYNONYMS.get(word, word)
    attr, val = _WORD_VALUES.get(w, ("", ""))
    return val if attr in ("height", "width", "profile") else None


def normalize_phrase(text: str) -> PhraseWords:
    """Read a prompt as people type it: "make it much taller", "covered in polka dots", "have it sit down",
    "put a hat on it", "paint it navy please". Filler words are dropped, everyday words and comparatives
    map to vocabulary words ("navy" -> blue, "less tall" -> short), and the rest is read by parse_phrase.
    A word that is neither known nor filler is a PromptError naming it and the close known words."""
    toks = tokenize(text)
    if not toks:
        raise PromptError(f"prompt {text!r} is empty")
    arm_ctx = any(t in _ARM_WORDS for t in toks)
    pieces: list[tuple[int, str, list[str]]] = []  # (position, typed word(s), vocabulary words read)
    ignored: list[tuple[int, str]] = []
    unknown = []
    i = 0
    while i < len(toks):
        t, nxt = toks[i], toks[i + 1] if i + 1 < len(toks) else ""
        near_arms = any(w in _ARM_WORDS for w in toks[max(0, i - 2): i + 3])
        if (t, nxt) in _PAIRS:
            pieces.append((i, f"{t} {nxt}", _PAIRS[t, nxt].split()))
            i += 2
            continue
        if t in ("less", "not"):  # "less tall", "not as wide", "not so round": the opposite value
            j = i + 1
            while j < len(toks) and toks[j] in ("as", "so", "too", "very", "that", "quite"):
                j += 1
            if j < len(toks) and _value_of(toks[j]) is not None:
                pieces.append((i, " ".join(toks[i: j + 1]), [_OPPOSITES[_value_of(toks[j])]]))
                i = j + 1
                continue
        if arm_ctx and t in _ARMS_DOWN and near_arms:  # "arms down", "lower its arms": the default pose
            pieces.append((i, t, ["standing"]))
        elif arm_ctx and t in _ARM_CONTEXT:
            pieces.append((i, t, [_ARM_CONTEXT[t]]))
        elif t == "wide" and arm_ctx and (i and toks[i - 1] in ("arms", "hands", "out", "spread", "open")
                                          or nxt == "open"):
            pieces.append((i, t, ["out"]))  # "arms wide (open)": not the object's width
        elif t in _VOCAB:
            pieces.append((i, t, [t]))
        elif t in _SYNONYMS:
            pieces.append((i, t, _SYNONYMS[t].split()))
        elif t in _FILLERS:
            ignored.append((i, t))
        else:
            unknown.append(t)
        i += 1
    if unknown:
        pool = _VOCAB | frozenset(_SYNONYMS)
        hints = "; ".join(f"{w!r} (close: {', '.join(_close_words(w, pool)) or 'none'})" for w in dict.fromkeys(unknown))
        raise PromptError(f"prompt {text!r} uses words the built-in domain does not know: {hints}. "
                          f"`pnr data vocab` lists the {len(_VOCAB)} known words")
    # "from red to blue", "turn the man into a chair": what comes after the last into/to wins
    marks = [k for k, (_, typed, _) in enumerate(pieces) if typed in ("into", "to")]
    if marks:
        attr_of = lambda ws: {_WORD_VALUES[w][0] for w in ws if w in _WORD_VALUES}  # noqa: E731
        after = set().union(*(attr_of(ws) for _, _, ws in pieces[marks[-1] + 1:]))
        before = [p for p in pieces[: marks[-1]] if attr_of(p[2]) & after]
        ignored += [(pos, typed) for pos, typed, _ in before]
        pieces = [p for p in pieces if p not in before]
    words = [w for _, _, ws in pieces for w in ws]
    attrs = _parse_tokens(words, text)
    unpatterned = attrs.get("pattern") == "plain" and "plain" not in words
    negated = attrs.get("accessory") == "none" or unpatterned
    spoken_pose = attrs.get("pose") in ("arms raised", "arms out", "left arm raised", "right arm raised")
    used = []
    for pos, typed, ws in pieces:
        if any(w in _WORD_VALUES or (w in _POSE_PARTS and spoken_pose) or (w in _NEGATIONS and negated)
               or (w == "pattern" and unpatterned) for w in ws):
            used.append(typed)
        else:
            ignored.append((pos, typed))
    mapped = {typed: " ".join(ws) for _, typed, ws in pieces if [typed] != ws}
    ignored_words = tuple(w for _, w in sorted(ignored))
    if not mapped and all(w in _VOCAB for w in ignored_words):  # nothing dropped or replaced: as typed
        out_text = text.strip()
    elif attrs and attrs.get("accessory") != "none":  # the form the prior was trained on: "in blue", "dotted"
        out_text = edit_phrase(attrs)
    else:
        out_text = " ".join(words)
    return PhraseWords(out_text, tuple(used), ignored_words, mapped, attrs)


def edit_phrase(attrs: dict[str, str]) -> str:
    """The canonical phrase naming `attrs` (a partial caption, as the built-in prior was trained on):
    {'color': 'blue'} -> 'in blue', {'pose': 'arms raised'} -> 'with arms raised', {'height': 'tall',
    'category': 'vase'} -> 'a tall vase'. Default values are spoken by name ('plain', 'round', 'standing')."""
    adj = [attrs[a] for a in ("height", "width", "profile", "color", "pattern") if attrs.get(a)]
    cat = attrs.get("category")
    figure = cat == "figure" or "pose" in attrs or attrs.get("accessory") in ("hat", "scarf")
    tail = []
    if "pose" in attrs:
        tail.append(POSE_PHRASES[attrs["pose"]])
    acc = attrs.get("accessory")
    if acc and acc != "none":
        tail.append(FIGURE_ACCESSORY_PHRASES[acc] if figure and acc in FIGURE_ACCESSORY_PHRASES
                    else OBJECT_ACCESSORY_PHRASES.get(acc, FIGURE_ACCESSORY_PHRASES.get(acc, acc)))
    if cat:
        words = adj + [cat]
        head = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
    elif adj == [attrs.get("color")]:
        head = "in " + adj[0]
    else:
        head = " ".join(adj)
    return ", ".join(p for p in [head] + tail if p)


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


def _close_words(word: str, pool=None) -> list[str]:
    """Known words spelled like `word`: the best match and any nearly as close (not every 50% match)."""
    ratio = lambda w: difflib.SequenceMatcher(None, word, w).ratio()  # noqa: E731
    close = difflib.get_close_matches(word, sorted(_VOCAB if pool is None else pool), n=4, cutoff=0.5)
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
    'wearing a hat' -> {'accessory': 'hat'}, 'a tall red striped mug' -> {category, height, color, pattern}.
    Everyday phrasings are read through `normalize_phrase` ('make it much taller' -> {'height': 'tall'})."""
    return dict(normalize_phrase(text).attributes)


def _parse_tokens(toks: list[str], text: str) -> dict[str, str]:
    """parse_phrase on vocabulary words `toks` (of the prompt `text`, named in errors)."""
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
    if s & {"left", "right"} and (raised or s & {"arm", "hand"}):
        out["pose"] = "left arm raised" if "left" in s else "right arm raised"
    elif "arms" in s and raised:
        out["pose"] = "arms raised"
    elif ("arms" in s and s & {"out", "spread"}) or "outstretched" in s:
        out["pose"] = "arms out"
    elif s & {"arm", "hand"} and raised:  # one arm / a hand raised: the right one, as "waving"
        out["pose"] = "right arm raised"
    if s & {"without", "no"}:
        if "accessory" in out:
            out["accessory"] = "none"
        elif out.get("pattern", "") != "plain" and ("pattern" in out or "pattern" in s):  # "without stripes"
            out["pattern"] = "plain"
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
    words = normalize_phrase(phrase)
    attrs = dict(words.attributes)
    if not attrs:
        skipped = f"; ignored: {', '.join(words.ignored)}" if words.ignored else ""
        raise PromptError(f"edit phrase {phrase!r} names no attribute of the built-in domain{skipped} "
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
           "vocabulary", "check_words", "validate", "spec_from_text", "differing_attrs", "replace",
           "normalize_phrase", "edit_phrase", "PhraseWords"]
