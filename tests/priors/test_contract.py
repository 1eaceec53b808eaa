"""The Denoiser contract (pnr.priors.base), run over every prior: the toy exact denoiser, the built-in prior, tiny
random Stable Diffusion and MVDream. Shapes of encode_images / decode / predict_eps (with CFG), gradients through
encode_images, the behaviour attributes (x0_range, default_guidance_scale, delta_min) and a monotone schedule.
A new prior joins by adding a factory to PRIORS below (the pattern of diffusers' SchedulerCommonTest)."""

import inspect
import math

import pytest
import torch

from pnr.priors.base import Denoiser, predict_eps_cfg
from pnr.render.cameras import random_orbit_views


def toy(tmp_path):
    from tests.edit.toy_prior import ToyDenoiser

    return ToyDenoiser(num_views=4, image_size=8), ["a red mug", "a blue mug"]


def builtin(tmp_path):
    from pnr.priors.builtin import BuiltinPrior, PriorConfig

    torch.manual_seed(0)
    return BuiltinPrior(PriorConfig.tiny(["a", "red", "blue", "chair"])).eval(), ["a red chair", "a blue chair"]


def sd(tmp_path):
    pytest.importorskip("diffusers")
    from pnr.priors.sd import random_sd, tiny_tokenizer

    return random_sd("tiny", tiny_tokenizer(tmp_path, words=("red", "chair"))), ["a red chair", "a chair"]


def mvdream(tmp_path):
    pytest.importorskip("diffusers")
    from pnr.priors import mvdream as mv
    from pnr.priors.sd import random_sd, tiny_tokenizer

    torch.manual_seed(0)
    base = random_sd("tiny", tiny_tokenizer(tmp_path, words=("red", "chair")))
    return mv.from_parts(mv.MultiViewUNet(mv.MVDreamConfig.tiny()).eval(), base), ["a red chair", "a chair"]


PRIORS = {"toy": toy, "builtin": builtin, "sd": sd, "mvdream": mvdream}
METHODS = ("encode_text", "null_text", "encode_images", "decode", "predict_eps")


@pytest.fixture(scope="module", params=list(PRIORS))
def prior(request, tmp_path_factory):
    return PRIORS[request.param](tmp_path_factory.mktemp(request.param))


def test_every_protocol_member_with_sane_values(prior):
    den, _ = prior
    annotated = set(Denoiser.__annotations__)
    assert {"num_views", "image_size", "schedule", "x0_range", "default_guidance_scale", "delta_min"} <= annotated
    for name in sorted(annotated) + list(METHODS):
        assert hasattr(den, name), name
    for name in METHODS:  # callable with the Protocol's arguments
        want = [p for p in inspect.signature(getattr(Denoiser, name)).parameters if p != "self"]
        assert len(inspect.signature(getattr(den, name)).parameters) >= len(want), name
    assert isinstance(den.num_views, int) and den.num_views >= 1
    assert isinstance(den.image_size, int) and den.image_size > 0
    assert den.x0_range is None or (isinstance(den.x0_range, float) and den.x0_range > 0)
    assert isinstance(den.default_guidance_scale, float) and 1.0 <= den.default_guidance_scale <= 200.0
    assert isinstance(den.delta_min, float) and math.isfinite(den.delta_min) and den.delta_min > 0


def test_shapes_gradients_and_range(prior):
    """rgb [B, V, 3, H, W] -> x [B, V, C, h, w] (differentiable) -> eps like x, and back to rgb in [0, 1]."""
    den, prompts = prior
    b, v = 2, den.num_views
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(b, v, 3, 12, 12, generator=g).requires_grad_()  # a render size the prior must resize from
    x = den.encode_images(rgb)
    assert x.dim() == 5 and x.shape[:2] == (b, v) and x.dtype == torch.float32
    x.square().sum().backward()
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0
    if den.x0_range is not None:  # pixel space: encoded images lie inside the clamp range
        assert x.abs().max() <= den.x0_range + 1e-6
    out = den.decode(x.detach())
    assert out.shape[:3] == (b, v, 3) and out.min() >= 0 and out.max() <= 1
    c2w = random_orbit_views(b, v, generator=g).c2w.view(b, v, 4, 4)
    t = torch.tensor([0.2, 0.8])
    with torch.no_grad():
        x_t = torch.randn(x.shape, generator=g)
        cond, uncond = den.encode_text(prompts), den.null_text(b)
        eps = den.predict_eps(x_t, t, cond, c2w)
        eps_cfg = predict_eps_cfg(den, x_t, t, cond, uncond, c2w, den.default_guidance_scale)
    assert eps.shape == x.shape and eps_cfg.shape == x.shape
    assert torch.isfinite(eps).all() and torch.isfinite(eps_cfg).all()


def test_schedule_is_monotone(prior):
    sched = prior[0].schedule
    acp = sched.alphas_cumprod
    assert acp.dim() == 1 and sched.num_steps == acp.shape[0] >= 2
    assert (acp > 0).all() and (acp < 1).all() and (acp[1:] < acp[:-1]).all()
    t = torch.linspace(0, 1, 101)
    alpha, sigma = sched.alpha_sigma(t)
    assert (alpha[1:] <= alpha[:-1]).all() and (sigma[1:] >= sigma[:-1]).all()
    assert torch.allclose(alpha**2 + sigma**2, torch.ones_like(alpha), atol=1e-5)
    assert sched.index(torch.tensor(0.0)) == 0 and sched.index(torch.tensor(1.0)) == sched.num_steps - 1


def test_presets_use_each_priors_own_guidance():
    from pnr.priors.builtin.prior import BuiltinPrior
    from pnr.priors.load import PRIORS as PRESETS
    from pnr.priors.mvdream import MVDreamPrior
    from pnr.priors.sd import StableDiffusionPrior

    kinds = {"sd15": StableDiffusionPrior, "sd21": StableDiffusionPrior, "mvdream": MVDreamPrior,
             "builtin": BuiltinPrior}
    for name, cls in kinds.items():
        assert PRESETS[name].guidance_scale == cls.default_guidance_scale, name
    assert (BuiltinPrior.x0_range, StableDiffusionPrior.x0_range, MVDreamPrior.x0_range) == (1.0, None, None)
    assert (StableDiffusionPrior.delta_min, MVDreamPrior.delta_min) == (1000.0, 1000.0)  # the paper's (App. C)
