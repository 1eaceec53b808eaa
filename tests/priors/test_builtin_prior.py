"""Built-in prior: shapes (V=4, V=1), CFG, save/load round trip, prompt errors, loss decreases."""

import json

import pytest
import torch

from pnr.errors import CheckpointError, PromptError
from pnr.priors.base import predict_eps_cfg, x0_from_eps
from pnr.priors.builtin import BuiltinPrior, PriorConfig, ddim_sample, default_views, load_builtin_prior, save_prior
from pnr.priors.builtin.train import SyntheticData, Trainer, TrainConfig, diffusion_loss

VOCAB = SyntheticData.vocab() + ["sitting", "in", "striped", "vase"]


def _prior(seed=0) -> BuiltinPrior:
    torch.manual_seed(seed)
    p = BuiltinPrior(PriorConfig.tiny(VOCAB)).eval()
    # zero-initialised output layers would make every prediction 0: randomise them for the tests
    with torch.no_grad():
        for prm in p.parameters():
            if prm.abs().sum() == 0 and prm.dim() > 1:
                prm.normal_(0, 0.02)
    return p


@pytest.mark.parametrize("views", [4, 1])
def test_predict_eps_shapes_and_view_coupling(views):
    p = _prior()
    b, s = 2, p.image_size
    x = torch.randn(b, views, 3, s, s)
    c2w = default_views(b, views)
    cond = p.encode_text(["a red ball", "sitting"])
    with torch.no_grad():
        eps = p.predict_eps(x, torch.tensor([0.3, 0.9]), cond, c2w)
        assert eps.shape == x.shape and torch.isfinite(eps).all()
        # batch items are independent
        x2 = x.clone()
        x2[1] += 1.0
        eps2 = p.predict_eps(x2, torch.tensor([0.3, 0.9]), cond, c2w)
        assert torch.allclose(eps[0], eps2[0], atol=1e-5)
        if views == 4:  # changing one view changes the others' predictions (joint attention)
            x3 = x.clone()
            x3[0, 0] += 1.0
            eps3 = p.predict_eps(x3, torch.tensor([0.3, 0.9]), cond, c2w)
            assert (eps3[0, 1:] - eps[0, 1:]).abs().max() > 1e-6
        # the camera matters
        eps4 = p.predict_eps(x, torch.tensor([0.3, 0.9]), cond, default_views(b, views, elevation_deg=40.0))
        assert (eps4 - eps).abs().max() > 1e-6


def test_cfg_combines_as_specified():
    p = _prior()
    x = torch.randn(2, 4, 3, p.image_size, p.image_size)
    t, c2w = torch.tensor([0.5, 0.2]), default_views(2)
    cond, unc = p.encode_text(["a red ball", "a blue ball"]), p.null_text(2)
    with torch.no_grad():
        ec, eu = p.predict_eps(x, t, cond, c2w), p.predict_eps(x, t, unc, c2w)
        g = predict_eps_cfg(p, x, t, cond, unc, c2w, 5.0)
    assert torch.allclose(g, eu + 5.0 * (ec - eu), atol=1e-4)
    assert (ec - eu).abs().max() > 1e-6  # text conditions the prediction
    x0 = x0_from_eps(p, x, t, g)
    assert x0.shape == x.shape


def test_encode_images_range_and_grad():
    p = _prior()
    rgb = torch.rand(1, 4, 3, 48, 48, requires_grad=True)
    x = p.encode_images(rgb)
    assert x.shape == (1, 4, 3, p.image_size, p.image_size) and x.min() >= -1 and x.max() <= 1
    x.sum().backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    assert torch.allclose(p.decode(p.encode_images(torch.full((1, 1, 3, 32, 32), 0.25))), torch.tensor(0.25))


def test_unknown_words_raise_prompt_error_with_suggestions():
    p = _prior()
    with pytest.raises(PromptError, match=r"'stripped'.*did you mean 'striped'"):
        p.encode_text(["a stripped vase"])
    with pytest.raises(PromptError, match="at most"):
        p.encode_text(["a " * 40])
    ids, mask = p.tokenizer.encode(["A Red, ball.", ""])
    assert mask.sum(1).tolist() == [4, 1]  # [CLS] + 3 words; the empty prompt is [CLS] only


def test_save_load_roundtrip_and_errors(tmp_path):
    p = _prior()
    path = save_prior(p, tmp_path / "prior.safetensors")
    q = load_builtin_prior(path)
    assert q.cfg == p.cfg and q.schedule.num_steps == p.schedule.num_steps
    x, c2w = torch.randn(1, 4, 3, p.image_size, p.image_size), default_views(1)
    with torch.no_grad():
        a = p.predict_eps(x, torch.tensor([0.4]), p.encode_text(["a red ball"]), c2w)
        b = q.predict_eps(x, torch.tensor([0.4]), q.encode_text(["a red ball"]), c2w)
    assert (a - b).abs().max() < 5e-3  # fp16 storage
    with pytest.raises(CheckpointError, match="does not exist"):
        load_builtin_prior(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_builtin_prior(tmp_path / "bad.safetensors")
    # a version mismatch is refused
    from safetensors.torch import load_file, save_file

    sd = load_file(str(path))
    save_file(sd, str(tmp_path / "old.safetensors"), metadata={"pnr_prior_version": "0",
                                                                 "config": json.dumps(p.cfg.to_dict())})
    with pytest.raises(CheckpointError, match="version"):
        load_builtin_prior(tmp_path / "old.safetensors")
    # weights that do not match the config are refused
    cfg = p.cfg.to_dict()
    cfg["channels"] = [8, 16, 16]
    save_file(sd, str(tmp_path / "mismatch.safetensors"), metadata={"pnr_prior_version": "1", "config": json.dumps(cfg)})
    with pytest.raises(CheckpointError, match="do not match"):
        load_builtin_prior(tmp_path / "mismatch.safetensors")


def test_loss_decreases_and_resume(tmp_path):
    torch.manual_seed(0)
    tr = Trainer(PriorConfig.tiny(SyntheticData.vocab()), TrainConfig(batch_groups=6, bf16=False, warmup_steps=5,
                                                                       log_every=10, single_view_every=3))
    data = SyntheticData(32, seed=1)
    g = torch.Generator().manual_seed(7)
    x0, c2w, prompts = SyntheticData(32, seed=99, drop=0.0).next_batch(16, 4)
    t = torch.linspace(0.05, 0.95, 16)
    eps = torch.randn(x0.shape, generator=g)

    def held_out():
        with torch.no_grad():
            return diffusion_loss(tr.model, x0, c2w, prompts, t=t, eps=eps).item()

    before = held_out()
    tr.train(data, seconds=1e9, out_dir=tmp_path, max_steps=30)
    after = held_out()
    assert after < 0.9 * before, (before, after)
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 3
    tr2 = Trainer.resume(tmp_path / "ckpt.pt")
    assert tr2.step == 30
    for a, b in zip(tr.ema.parameters(), tr2.ema.parameters()):
        assert torch.equal(a, b)


def test_ddim_sample_runs_and_is_seeded():
    p = _prior()
    c2w = default_views(1, 4)
    a = ddim_sample(p, ["a red ball"], c2w, steps=4, generator=torch.Generator().manual_seed(0))
    b = ddim_sample(p, ["a red ball"], c2w, steps=4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (1, 4, 3, p.image_size, p.image_size) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
