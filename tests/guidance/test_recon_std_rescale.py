"""SDS's recon_std_rescale (MVDream-threestudio's x0 std rescale) on a tiny random MVDream prior, 2 groups of
4 views at CFG 50: 0 is today's x0 gradient bit for bit, 0.5 equals a hand computation from separate
conditional/unconditional predictions with an explicit per-group std."""

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.guidance.sds import sds  # noqa: E402
from pnr.priors.base import predict_eps_cfg  # noqa: E402
from pnr.render.cameras import random_orbit_views  # noqa: E402

SCALE = 50.0  # MVDream-threestudio's guidance_scale


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from pnr.priors import mvdream as mv
    from pnr.priors.sd import SDConfig, random_sd, tiny_tokenizer

    torch.manual_seed(0)
    unet = mv.MultiViewUNet(mv.MVDreamConfig.tiny()).eval()
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"), words=("red", "chair"))
    prior = mv.from_parts(unet, random_sd("tiny", tok, cfg=SDConfig(image_size=16)))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 4, 8, 8, generator=g).requires_grad_()  # [B groups, V views, 4, h, w] latents
    c2w = random_orbit_views(2, 4, generator=g).c2w.view(2, 4, 4, 4)
    t = torch.tensor([0.3, 0.7])
    noise = torch.randn(x.shape, generator=g)
    return prior, x, prior.encode_text(["a red chair"] * 2), prior.null_text(2), c2w, t, noise


def by_hand(prior, x, cond, uncond, c2w, t, noise, factor):
    """x - D with D = f * D_cfg * std(D_c) / std(D_cfg) + (1 - f) * D_cfg, unbatched branches, explicit std."""
    a, s = (v.view(-1, 1, 1, 1, 1) for v in prior.schedule.alpha_sigma(t))
    x_t = a * x.detach() + s * noise
    with torch.no_grad():
        eps_c, eps_u = prior.predict_eps(x_t, t, cond, c2w), prior.predict_eps(x_t, t, uncond, c2w)
    x0_c = (x_t - s * eps_c) / a
    x0_cfg = (x_t - s * (eps_u + SCALE * (eps_c - eps_u))) / a

    def std(z):  # unbiased, over the V*C*h*w numbers of each group (torch.std's default, as the reference)
        z = z.flatten(1).double()
        return ((z - z.mean(1, keepdim=True)).pow(2).sum(1) / (z.shape[1] - 1)).sqrt().view(-1, 1, 1, 1, 1)

    ratio = (std(x0_c) + 1e-8) / (std(x0_cfg) + 1e-8)
    x0 = factor * x0_cfg * ratio + (1 - factor) * x0_cfg
    return x.detach() - x0.float(), ratio.flatten()


def test_zero_reproduces_todays_gradient_bit_for_bit(setup):
    prior, x, cond, uncond, c2w, t, noise = setup
    out = sds(prior, x, cond, uncond, c2w, t, SCALE, weighting="x0", noise=noise, recon_std_rescale=0.0)
    a, s = (v.view(-1, 1, 1, 1, 1) for v in prior.schedule.alpha_sigma(t))
    x_t = a * x.detach() + s * noise
    with torch.no_grad():  # the x0 gradient as sds computed it before recon_std_rescale existed
        today = x.detach() - (x_t - s * predict_eps_cfg(prior, x_t, t, cond, uncond, c2w, SCALE)) / a
    assert torch.equal(out["grad"], today)
    assert torch.equal(out["grad"], sds(prior, x, cond, uncond, c2w, t, SCALE, noise=noise)["grad"])


def test_half_matches_a_hand_computation(setup):
    prior, x, cond, uncond, c2w, t, noise = setup
    out = sds(prior, x, cond, uncond, c2w, t, SCALE, weighting="x0", noise=noise, recon_std_rescale=0.5)
    want, ratio = by_hand(prior, x, cond, uncond, c2w, t, noise, 0.5)
    assert (out["grad"] - want).abs().max() < 1e-4 * want.abs().max()  # batched vs unbatched UNet calls
    plain = sds(prior, x, cond, uncond, c2w, t, SCALE, noise=noise)["grad"]
    assert (out["grad"] - plain).abs().max() > 1e-2 * plain.abs().max()  # the rescale does something
    assert (ratio < 1).all()  # at CFG 50 the guided x0 is spread wider than the conditional one
    out["loss"].backward()  # surrogate: d loss / dx = grad / (B * V)
    assert torch.allclose(x.grad, out["grad"] / 8, atol=1e-6)


def test_needs_x0_weighting_and_a_factor_in_0_1(setup):
    prior, x, cond, uncond, c2w, t, noise = setup
    with pytest.raises(ValueError, match="weighting 'x0'"):
        sds(prior, x, cond, uncond, c2w, t, SCALE, weighting="eps", noise=noise, recon_std_rescale=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sds(prior, x, cond, uncond, c2w, t, SCALE, noise=noise, recon_std_rescale=1.5)
