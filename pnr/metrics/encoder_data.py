"""Training batches and held-out evaluation for the domain encoder, rendered on the fly.

Images: exact renders of random specs (`pnr.data.domain.render.render_specs`) from random orbit cameras,
composited on a white, black or gray background, with mild blur and noise so NeRF renders (smoother,
noisier) are not out of distribution. No flips: "left arm raised" must stay left. No colour jitter:
colour is an attribute.
"""

from __future__ import annotations

import queue
import random
import threading
from typing import Callable

import torch
import torch.nn.functional as F

from pnr.data.domain import grammar as G
from pnr.data.domain.render import render_specs
from pnr.metrics.attributes import attribute_scores
from pnr.metrics.clip_metrics import embed_images
from pnr.metrics.domain_text import READ_ATTRS, applies, hard_negative, sample_caption, spec_attrs
from pnr.metrics.train_encoder import Batch
from pnr.render.cameras import from_fov, look_at, orbit_cameras, orbit_positions

HELDOUT_SEED = 1_000_003  # held-out specs come from this seed stream, training specs from `seed` (< 1e6)


def random_cameras(n: int, res: int, gen: torch.Generator, device, elevation=(-5.0, 50.0), radius=(2.75, 3.25), fov=40.0):
    u = lambda: torch.rand(n, generator=gen)  # noqa: E731
    az = u() * 360.0
    el = elevation[0] + u() * (elevation[1] - elevation[0])
    rad = radius[0] + u() * (radius[1] - radius[0])
    return from_fov(look_at(orbit_positions(az, el, rad)), fov, res).to(device)


def composite(rgba: torch.Tensor, background: torch.Tensor | float = 1.0) -> torch.Tensor:
    """rgba [B,H,W,4] straight alpha -> rgb [B,3,H,W] over a background (scalar or [B] gray level)."""
    rgb, a = rgba[..., :3], rgba[..., 3:]
    bg = background if not torch.is_tensor(background) else background.view(-1, 1, 1, 1).to(rgba)
    return (rgb * a + bg * (1 - a)).permute(0, 3, 1, 2).contiguous()


def _gauss_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur, sigma [B] in pixels (0 = none), 5-tap separable."""
    t = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    s = sigma.to(x).clamp_min(1e-3).view(-1, 1)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # [B,5]
    b, c, h, w = x.shape
    y = F.pad(x, (2, 2, 2, 2), mode="replicate")
    y = sum(k[:, i].view(b, 1, 1, 1) * y[..., :, i : i + w] for i in range(5))
    y = sum(k[:, i].view(b, 1, 1, 1) * y[..., i : i + h, :] for i in range(5))
    return y


def augment(rgba: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """rgba [B,H,W,4] -> rgb [B,3,H,W]: random background, blur (half the images), small noise."""
    b = rgba.shape[0]
    r = torch.rand(b, generator=gen)
    bg = torch.where(r < 0.6, 1.0, torch.where(r < 0.8, 0.0, torch.rand(b, generator=gen)))
    x = composite(rgba, bg)
    sigma = torch.where(torch.rand(b, generator=gen) < 0.5, 0.3 + 0.9 * torch.rand(b, generator=gen), torch.zeros(b))
    x = _gauss_blur(x, sigma.to(x.device))
    noise = (0.02 * torch.rand(b, generator=gen)).view(b, 1, 1, 1).to(x.device)
    return (x + noise * torch.randn(x.shape, device=x.device)).clamp(0, 1)


_CODES = {a: {v: i for i, v in enumerate(sorted(set(G.ATTRIBUTES[a]) | {""}))} for a in READ_ATTRS}


def attr_codes(attrs: list[dict[str, str]]) -> torch.Tensor:
    """Attribute dicts -> int codes [N, n_attrs]; -1 where a dict does not assert the attribute."""
    return torch.tensor([[_CODES[a][d[a]] if a in d else -1 for a in READ_ATTRS] for d in attrs])


def positives(truth: list[dict[str, str]], asserted: list[dict[str, str]]) -> torch.Tensor:
    """[len(truth), len(asserted)] bool: caption j's assertions all hold for object i (vectorised)."""
    t, a = attr_codes(truth)[:, None], attr_codes(asserted)[None]
    return ((a == -1) | (a == t)).all(-1)


def domain_sampler(res: int = 64, device="cpu", p_partial: float = 0.3, p_supersample: float = 0.5,
                   seed: int = 0, views_per_spec: int = 4, p_figure: float = 0.3) -> Callable[[int, torch.Generator], Batch]:
    """Batch of n images: n / views_per_spec random objects seen from independent random cameras, one
    sampled true caption per image and one hard negative each. Several views per object amortise the
    (Python) primitive packing of the renderer, which bounds throughput on a GPU. A share `p_figure` of the
    objects is drawn among figures only: pose and the figure's accessories are the finest distinctions."""
    rng = random.Random(seed)
    v = views_per_spec

    def one() -> G.ObjectSpec:
        want_figure = rng.random() < p_figure
        while True:
            s = G.sample_spec(rng)
            if not want_figure or s.category == "figure":
                return s

    def sample(n: int, gen: torch.Generator) -> Batch:
        specs = [one() for _ in range(max(1, n // v))]
        per_img = [s for s in specs for _ in range(v)]
        cams = random_cameras(len(per_img), res, gen, device)
        ss = 2 if rng.random() < p_supersample else 1
        rgba, _ = render_specs(specs, cams, v, supersample=ss)
        imgs = augment(rgba, gen)
        caps, asserts = [], []
        for s in per_img:
            c, a = sample_caption(s, rng, p_partial)
            caps.append(c)
            asserts.append(a)
        for s, a in zip(per_img, list(asserts)):
            c, b = hard_negative(s, a, rng)
            caps.append(c)
            asserts.append(b)
        return Batch(imgs, caps, positives([spec_attrs(s) for s in per_img], asserts))

    return sample


class prefetch:
    """Run `sampler` in a background thread (spec packing is Python; GPU rendering overlaps training).

    Call like the sampler; `close()` stops the thread (also at interpreter exit, so no CUDA work is cut).
    """

    def __init__(self, sampler: Callable[[int, torch.Generator], Batch], depth: int = 3):
        self.sampler, self.q = sampler, queue.Queue(maxsize=depth)
        self.stop, self.err, self.thread = threading.Event(), None, None

    def _work(self, n: int, gen: torch.Generator) -> None:
        while not self.stop.is_set():
            try:
                b = self.sampler(n, gen)
            except Exception as e:  # surfaced to the caller on its next call
                self.err, b = e, None
            while not self.stop.is_set():
                try:
                    self.q.put(b, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if b is None:
                return

    def __call__(self, n: int, gen: torch.Generator) -> Batch:
        if self.thread is None:
            g = torch.Generator().manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
            self.thread = threading.Thread(target=self._work, args=(n, g), daemon=True)
            self.thread.start()
        b = self.q.get()
        if b is None:
            raise self.err
        return b

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=60)


def heldout_set(n_specs: int = 300, views: int = 4, res: int = 64, device="cpu", elevation: float = 20.0,
                radius: float = 3.0, background: float = 1.0, supersample: int = 2):
    """Exact renders of unseen random specs on turntable cameras -> (images [n*V,3,H,W], specs)."""
    rng = random.Random(HELDOUT_SEED)
    specs = [G.sample_spec(rng) for _ in range(n_specs)]
    cams = []
    for i in range(n_specs):
        cams.append(orbit_cameras(views, elevation, radius, 40.0, res, azimuth0_deg=rng.uniform(0, 360)))
    from pnr.render.cameras import Cameras

    cam = Cameras.cat(cams).to(device)
    out = []
    chunk = 64
    for i in range(0, n_specs, chunk):
        rgba, _ = render_specs(specs[i : i + chunk], cam[i * views : (i + chunk) * views], views, supersample=supersample)
        out.append(composite(rgba, background))
    return torch.cat(out), specs


@torch.no_grad()
def attribute_accuracy(encoder, images: torch.Tensor, specs: list, views: int) -> dict[str, dict]:
    """Per attribute: accuracy of single views and of V-view pooling, with the true spec as context.

    Also the chance level (mean 1/number of alternatives). Only objects whose category has the attribute count.
    """
    emb = embed_images(encoder, images).view(len(specs), views, -1)
    res = {}
    for a in READ_ATTRS:
        n = cv = cp = 0
        chance = 0.0
        for s, e in zip(specs, emb):
            if not applies(s, a):
                continue
            values, logp = attribute_scores(encoder, e, s, a)
            truth = values.index(getattr(s, a))
            cv += int((logp.argmax(-1) == truth).sum())
            cp += int(logp.mean(0).argmax() == truth)
            n += 1
            chance += 1.0 / len(values)
        if n:
            res[a] = {"n_objects": n, "view_acc": cv / (n * views), "pooled_acc": cp / n, "chance": chance / n}
    return res


def format_accuracy_table(acc: dict[str, dict], views: int = 4) -> str:
    lines = [f"| attribute | objects | single-view acc | {views}-view pooled acc | chance |", "|---|---|---|---|---|"]
    for a, r in acc.items():
        lines.append(f"| {a} | {r['n_objects']} | {100 * r['view_acc']:.1f}% | {100 * r['pooled_acc']:.1f}% | {100 * r['chance']:.1f}% |")
    return "\n".join(lines)
