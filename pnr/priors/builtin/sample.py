"""DDIM sampling (Song et al. 2021, eta = 0) with classifier-free guidance, for any Denoiser."""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm import tqdm

from pnr.priors.base import Denoiser, predict_eps_cfg
from pnr.render.cameras import orbit_cameras


def ddim_timesteps(num_steps: int, schedule_steps: int) -> Tensor:
    """Descending discrete indices, evenly spaced ("trailing": starts at the last, pure-noise step)."""
    idx = torch.linspace(schedule_steps - 1, 0, num_steps + 1)[:-1].round().long()
    return torch.unique_consecutive(idx)


@torch.no_grad()
def ddim_sample(den: Denoiser, prompts: list[str], c2w: Tensor, steps: int = 50, guidance_scale: float = 5.0,
                generator: torch.Generator | None = None, x_T: Tensor | None = None, progress: bool = False,
                start: int | None = None) -> Tensor:
    """Samples B = len(prompts) groups of V views at cameras `c2w: [B, V, 4, 4]` -> rgb [B, V, 3, S, S] in [0, 1].

    start: a schedule index; x_T is then a sample noised to that index (SDEdit, bench/prior_edit_probe.py) and the
    trajectory runs from it through the `steps`-step grid's indices below it."""
    b, v = c2w.shape[:2]
    dev = c2w.device
    s = den.image_size
    sched = den.schedule
    acp = sched.alphas_cumprod.to(dev)
    x = x_T if x_T is not None else torch.randn(b, v, 3, s, s, generator=generator).to(dev)
    cond, uncond = den.encode_text(prompts), den.null_text(b)
    ts = ddim_timesteps(steps, sched.num_steps)
    if start is not None:
        ts = torch.cat([torch.tensor([start]), ts[ts < start]])
    for i, idx in enumerate(tqdm(ts.tolist(), desc="ddim", disable=not progress)):
        t = torch.full((b,), idx / (sched.num_steps - 1), device=dev)
        eps = predict_eps_cfg(den, x, t, cond, uncond, c2w, guidance_scale).float()
        a_t = acp[idx]
        x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
        eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # consistent with the clamped x0
        a_prev = acp[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=dev)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return den.decode(x)


def default_views(batch: int, n_views: int = 4, elevation_deg: float = 15.0, device="cpu") -> Tensor:
    """c2w [B, V, 4, 4]: V views 360/V apart on an orbit of radius 3 (the training distribution's middle)."""
    c2w = orbit_cameras(n_views, elevation_deg=elevation_deg, radius=3.0, azimuth0_deg=-90.0, device=device).c2w
    return c2w[None].expand(batch, -1, -1, -1).contiguous()
