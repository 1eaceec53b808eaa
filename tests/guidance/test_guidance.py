import pytest
import torch

from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.guidance.pds import pds, pds_timesteps
from pnr.guidance.sdedit import sdedit
from pnr.guidance.sds import sds, surrogate_loss
from pnr.render.cameras import random_orbit_views
from pnr.render.volume import render
from tests.edit.toy_prior import ToyDenoiser


def test_surrogate_gradient_is_grad_over_views():
    x = torch.randn(2, 3, 3, 4, 4, requires_grad=True)
    grad = torch.randn_like(x)
    loss = surrogate_loss(x, grad)
    loss.backward()
    assert torch.allclose(x.grad, grad / 6)
    assert float(loss.detach()) == pytest.approx(0.5 * float(grad.pow(2).sum()) / 6, rel=1e-5)


def test_sds_weightings_against_hand_formula():
    den = ToyDenoiser(num_views=2)
    x = torch.rand(1, 2, 3, 8, 8) * 2 - 1
    cond = den.encode_text(["a red mug"])
    t = torch.tensor([0.5])
    noise = torch.randn_like(x)
    c2w = torch.eye(4).expand(1, 2, 4, 4)
    out = sds(den, x.clone().requires_grad_(), cond, den.null_text(1), c2w, t, 7.5, weighting="x0", noise=noise,
              x0_range=1.0)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 1, 3, 1, 1)
    assert torch.allclose(out["grad"], x - red, atol=1e-4)  # exact denoiser: CFG gives x0 = 7.5 c, clamped to c
    a, s = den.schedule.alpha_sigma(t)
    out_e = sds(den, x.clone().requires_grad_(), cond, den.null_text(1), c2w, t, 1.0, weighting="eps", noise=noise)
    assert torch.allclose(out_e["grad"], (a / s * s * s) * (x - red), atol=1e-4)  # sigma^2 (eps_hat - eps)
    with pytest.raises(ValueError):
        sds(den, x, cond, den.null_text(1), c2w, t, 1.0, weighting="nope")


def test_an_sds_step_on_a_field_lowers_the_surrogate():
    torch.manual_seed(0)
    den = ToyDenoiser(num_views=1, image_size=8)
    field = Field(FieldConfig.tiny(), seed=0)
    opt = torch.optim.SGD(field.parameters(), lr=0.01)
    cams = random_orbit_views(1, 1, generator=torch.Generator().manual_seed(0), res=8)
    cond, uncond = den.encode_text(["a blue mug"]), den.null_text(1)
    noise = torch.randn(1, 1, 3, 8, 8)
    t = torch.tensor([0.3])

    def loss():
        rgb = render(field, cams, None, num_samples=16)["rgb"]
        x = den.encode_images(rgb.view(1, 1, 8, 8, 3).permute(0, 1, 4, 2, 3))
        return sds(den, x, cond, uncond, cams.c2w.view(1, 1, 4, 4), t, 5.0, noise=noise, x0_range=1.0)["loss"]

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    after = loss()
    assert after.item() < 0.9 * before.item()


def test_pds_closed_form_and_zero_when_source_equals_target():
    den = ToyDenoiser(num_views=1)
    x = torch.rand(2, 1, 3, 8, 8) * 2 - 1
    c2w = torch.eye(4).expand(2, 1, 4, 4)
    blue, red, unc = den.encode_text(["blue"] * 2), den.encode_text(["red"] * 2), den.null_text(2)
    t, tp = pds_timesteps(1000, 2, generator=torch.Generator().manual_seed(1))
    assert torch.all(t - tp == 2) and int(t.min()) >= 20 and int(t.max()) < 980
    same = pds(den, x.clone().requires_grad_(), x, blue, blue, unc, c2w, 3.0, t, tp)
    assert float(same["grad"].abs().max()) < 1e-4
    out = pds(den, x.clone().requires_grad_(), x, blue, red, unc, c2w, 1.0, t, tp)
    acp = den.schedule.alphas_cumprod
    ab_t, ab_p = acp[t].view(-1, 1, 1, 1, 1), acp[tp].view(-1, 1, 1, 1, 1)
    beta = 1 - ab_t / ab_p
    sigma = ((1 - ab_p) / (1 - ab_t) * beta).sqrt()
    c0 = ab_p.sqrt() * beta / (1 - ab_t)
    diff = (blue - red).view(2, 1, 3, 1, 1)
    assert torch.allclose(out["grad"], -c0 * diff / sigma, atol=1e-3)


def test_sdedit_with_an_exact_denoiser_returns_the_prompt_image():
    den = ToyDenoiser(num_views=2)
    x = torch.rand(1, 2, 3, 8, 8) * 2 - 1
    out = sdedit(den, x, 0.6, den.encode_text(["green"]), den.null_text(1), torch.eye(4).expand(1, 2, 4, 4), 5.0,
                 steps=5, x0_range=1.0, generator=torch.Generator().manual_seed(0))
    green = torch.tensor([-1.0, 1.0, -1.0]).view(1, 1, 3, 1, 1).expand_as(out)
    assert torch.allclose(out, green, atol=0.05)
