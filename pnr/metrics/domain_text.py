"""Text side of the domain encoder: which captions are true of which object, and caption alternatives.

Full captions (`grammar.caption`) leave defaults unspoken, so "a red mug" means a plain, medium, round
red mug without accessory: a full caption is true of an object only if all discrete attributes match.
Partial phrases name one attribute the way edit prompts do ("in blue", "striped", "sitting",
"wearing a hat", "tall", "a mug") and are true of every object with that value.
"""

from __future__ import annotations

import random
from dataclasses import replace

from pnr.data.domain import grammar as G

READ_ATTRS = ("category", "color", "pattern", "height", "width", "profile", "pose", "accessory")


def spec_attrs(spec: G.ObjectSpec) -> dict[str, str]:
    """The discrete attributes of a spec ("" where the category lacks the attribute)."""
    return {a: getattr(spec, a) for a in READ_ATTRS}


def applies(spec: G.ObjectSpec, attr: str) -> bool:
    """Whether `attr` can vary for this spec's category (its alternatives are more than one value)."""
    return len(values_for(spec, attr)) > 1


def values_for(spec: G.ObjectSpec, attr: str) -> list[str]:
    """Valid values of `attr` for an object of this spec's category."""
    if attr == "category":
        return list(G.CATEGORIES)
    if attr == "accessory":
        return ["none", *G.CATEGORY_ACCESSORIES[spec.category]]
    if attr in ("height", "width", "profile", "pose"):
        return list(G.ATTRIBUTES[attr]) if attr in G.CATEGORY_ATTRS[spec.category] else [""]
    return list(G.ATTRIBUTES[attr])


def with_value(spec: G.ObjectSpec, attr: str, value: str) -> G.ObjectSpec:
    """`spec` with one attribute set; a category change resets attributes the new category lacks."""
    if attr != "category":
        return replace(spec, **{attr: value})
    d = spec.to_dict()
    d["category"] = value
    for a in ("height", "width", "profile", "pose"):
        if a not in G.CATEGORY_ATTRS[value]:
            d[a] = ""
        elif d[a] == "":
            d[a] = G.DEFAULTS[a]
    if d["accessory"] not in G.CATEGORY_ACCESSORIES[value]:
        d["accessory"] = "none"
    return G.ObjectSpec(**d)


def alternatives(spec: G.ObjectSpec, attr: str) -> tuple[list[str], list[G.ObjectSpec]]:
    """(values, specs) that differ from `spec` only in `attr` (the spec's own value included)."""
    vals = values_for(spec, attr)
    return vals, [with_value(spec, attr, v) for v in vals]


def phrase(attr: str, value: str, category: str = "") -> str | None:
    """An edit-prompt-like phrase naming one attribute value (None for defaults with no word)."""
    if attr == "category":
        return f"a {value}"
    if attr == "color":
        return f"in {value}"
    if attr == "pattern":
        return value  # "plain" is a word too
    if attr in ("height", "width"):
        return None if value in ("", "medium") else value
    if attr == "profile":
        return value or None
    if attr == "pose":
        return G.POSE_PHRASES.get(value) if value else None
    if attr == "accessory":
        if value == "none":
            return None
        return G.FIGURE_ACCESSORY_PHRASES[value] if category == "figure" else G.OBJECT_ACCESSORY_PHRASES[value]
    return None


def caption_true(asserted: dict[str, str], truth: dict[str, str]) -> bool:
    return all(truth.get(k) == v for k, v in asserted.items())


def sample_caption(spec: G.ObjectSpec, rng: random.Random, p_partial: float = 0.3) -> tuple[str, dict[str, str]]:
    """A true caption for `spec`: the full caption (asserts all attributes) or a one-attribute phrase."""
    truth = spec_attrs(spec)
    if rng.random() < p_partial:
        opts = [(a, truth[a]) for a in READ_ATTRS if phrase(a, truth[a], spec.category)]
        a, v = rng.choice(opts)
        return phrase(a, v, spec.category), {a: v}
    return G.caption(spec), truth


def hard_negative(spec: G.ObjectSpec, asserted: dict[str, str], rng: random.Random) -> tuple[str, dict[str, str]]:
    """A caption like the asserted one with one attribute changed to another valid value."""
    if len(asserted) == 1:
        (a, v), = asserted.items()
        opts = [w for w in values_for(spec, a) if w != v and phrase(a, w, spec.category)]
        if opts:
            w = rng.choice(opts)
            return phrase(a, w, spec.category), {a: w}
    attrs = [a for a in READ_ATTRS if applies(spec, a)]
    a = rng.choice(attrs)
    w = rng.choice([x for x in values_for(spec, a) if x != getattr(spec, a)])
    other = with_value(spec, a, w)
    return G.caption(other), spec_attrs(other)
