"""Training data of the built-in prior: procedural objects rendered on the fly (pnr.data.domain).

Renders are composited on a white background (the NeRF fields carry a background model; a plain
white one is what the edit loop's renders look like away from the object). Cameras: 4 views 90 deg
apart on one random orbit, elevation 0-30 deg, radius 2.8-3.2, 40 deg FOV (MVDream's setting and
`random_orbit_views`' defaults). A GPU-resident pool of rendered objects is refreshed continuously,
spending about `render_frac` of the wall clock on rendering, so the renderer's speed never stalls
training. Captions are redrawn with attribute-level dropout each time an object is used.
"""

from __future__ import annotations

import random
import time
import zlib

import torch
from torch import Tensor

from pnr.data.domain import grammar
from pnr.data.domain.render import render_specs
from pnr.render.cameras import random_orbit_views

HOLDOUT_MOD = 20  # captions with crc32 % 20 == 0 (~5% of attribute combinations) are never trained on


def domain_vocab() -> list[str]:
    return list(grammar.vocabulary())


def is_held_out(spec: grammar.ObjectSpec) -> bool:
    return zlib.crc32(grammar.caption(spec).encode()) % HOLDOUT_MOD == 0


def sample_train_spec(rng: random.Random) -> grammar.ObjectSpec:
    while True:
        spec = grammar.sample_spec(rng)
        if not is_held_out(spec):
            return spec


def sample_held_out_specs(n: int, seed: int = 12345) -> list[grammar.ObjectSpec]:
    """`n` objects whose full captions never appear in training (distinct captions)."""
    rng, out, seen = random.Random(seed), [], set()
    while len(out) < n:
        spec = grammar.sample_spec(rng)
        c = grammar.caption(spec)
        if is_held_out(spec) and c not in seen:
            seen.add(c)
            out.append(spec)
    return out


def partial_caption(spec: grammar.ObjectSpec, rng: random.Random, keep: float = 0.5) -> str:
    """A phrase naming a random non-empty subset of the caption's attributes: 'sitting', 'in blue',
    'a tall striped vase', 'wearing a hat' -- the forms edit prompts take."""
    adj = []  # (attribute, word) in caption order
    if spec.height not in ("", "medium"):
        adj.append(("height", spec.height))
    if spec.width not in ("", "medium"):
        adj.append(("width", spec.width))
    if spec.profile == "square":
        adj.append(("profile", "square"))
    adj.append(("color", spec.color))
    if spec.pattern != "plain":
        adj.append(("pattern", spec.pattern))
    tail = []
    if spec.category == "figure":
        tail.append(grammar.POSE_PHRASES[spec.pose or "standing"])
        if spec.accessory != "none":
            tail.append(grammar.FIGURE_ACCESSORY_PHRASES[spec.accessory])
    elif spec.accessory != "none":
        tail.append(grammar.OBJECT_ACCESSORY_PHRASES[spec.accessory])
    n_items = len(adj) + 1 + len(tail)
    while True:
        mask = [rng.random() < keep for _ in range(n_items)]
        if any(mask):
            break
    kept_adj = [w for (_, w), m in zip(adj, mask) if m]
    kept_cat = mask[len(adj)]
    kept_tail = [p for p, m in zip(tail, mask[len(adj) + 1:]) if m]
    if kept_cat:
        words = kept_adj + [spec.category]
        head = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
    elif kept_adj == [spec.color] and rng.random() < 0.5:
        head = "in " + spec.color
    else:
        head = " ".join(kept_adj)
    return ", ".join(p for p in [head] + kept_tail if p)


def training_caption(spec: grammar.ObjectSpec, rng: random.Random, p_empty: float = 0.1,
                     p_partial: float = 0.4) -> str:
    """10% empty (the CFG unconditional branch), 40% partial, 50% the full caption."""
    u = rng.random()
    if u < p_empty:
        return ""
    if u < p_empty + p_partial:
        return partial_caption(spec, rng)
    return grammar.caption(spec)


@torch.no_grad()
def render_groups(specs: list[grammar.ObjectSpec], views: int, res: int, generator: torch.Generator,
                  device, supersample: int = 1) -> tuple[Tensor, Tensor]:
    """-> x0 [B, V, 3, res, res] in [-1, 1] on white, c2w [B, V, 4, 4]."""
    cams = random_orbit_views(len(specs), views, generator=generator, res=res, device=device)
    rgba, _ = render_specs(specs, cams, views_per_spec=views, supersample=supersample)
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # straight alpha over white
    x0 = (rgb * 2 - 1).permute(0, 3, 1, 2).reshape(len(specs), views, 3, res, res)
    return x0, cams.c2w.reshape(len(specs), views, 4, 4)


class DomainData:
    """DataSource over the object domain with a continuously refreshed GPU pool of rendered groups."""

    def __init__(self, image_size: int, device, seed: int = 0, pool_size: int = 4096, chunk: int = 256,
                 render_frac: float = 0.2, min_fill: int = 1024, supersample: int = 2):
        self.s, self.device = image_size, torch.device(device)
        if self.device.type != "cuda":
            pool_size, chunk, min_fill = min(pool_size, 64), min(chunk, 16), min(min_fill, 16)
        self.pool_size, self.chunk, self.render_frac, self.min_fill = pool_size, chunk, render_frac, min_fill
        self.supersample = supersample
        self.rng = random.Random(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.x0 = torch.empty(pool_size, 4, 3, image_size, image_size, device=self.device, dtype=torch.bfloat16
                              if self.device.type == "cuda" else torch.float32)
        self.c2w = torch.empty(pool_size, 4, 4, 4, device=self.device)
        self.specs: list = [None] * pool_size
        self.filled = self.head = 0
        self.render_s, self.t0 = 0.0, time.time()
        self.rendered = 0

    def _render_chunk(self) -> None:
        t = time.time()
        specs = [sample_train_spec(self.rng) for _ in range(self.chunk)]
        x0, c2w = render_groups(specs, 4, self.s, self.gen, self.device, self.supersample)
        idx = (self.head + torch.arange(self.chunk)) % self.pool_size
        self.x0[idx.to(self.device)] = x0.to(self.x0.dtype)
        self.c2w[idx.to(self.device)] = c2w
        for j, i in enumerate(idx.tolist()):
            self.specs[i] = specs[j]
        self.head = (self.head + self.chunk) % self.pool_size
        self.filled = min(self.pool_size, self.filled + self.chunk)
        self.rendered += self.chunk
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.render_s += time.time() - t

    def next_batch(self, groups: int, views: int = 4) -> tuple[Tensor, Tensor, list[str]]:
        while self.filled < self.min_fill or self.render_s < self.render_frac * (time.time() - self.t0):
            self._render_chunk()
            if self.filled >= self.min_fill and self.render_s >= self.render_frac * (time.time() - self.t0):
                break
        idx = torch.randint(0, self.filled, (groups,), generator=self.gen)
        x0 = self.x0[idx.to(self.device)].float()
        c2w = self.c2w[idx.to(self.device)]
        if views != 4:
            x0, c2w = x0[:, :views], c2w[:, :views]
        prompts = [training_caption(self.specs[i], self.rng) for i in idx.tolist()]
        return x0, c2w, prompts
