"""InstructPix2Pix (issue 20, gap 4): the last DDIM step returns the x0 estimate (no predicted noise left in the
edit), and load_ip2p reads weights straight into the target dtype."""

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.priors import ip2p  # noqa: E402
from tests.priors.test_ip2p import tiny_editor  # noqa: E402


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    return tiny_editor(tmp_path_factory.mktemp("ip2p"))


def test_final_step_returns_x0(editor, monkeypatch):
    """Spy on the UNet and the VAE decoder over a whole 2-step edit: what is decoded equals the last step's
    x0 = (z - sigma eps) / alpha, computed by hand from that step's input latents and guided eps."""
    seen = {}
    unet_forward, decode = editor.unet.forward, editor.vae.decode

    def spy_unet(inp, idx, **kw):
        out = unet_forward(inp, idx, **kw)
        seen.update(z=inp[: inp.shape[0] // 3, :4].float(), idx=idx[0].item(), eps=out.sample.float().chunk(3))
        return out

    def spy_decode(z, *a, **kw):
        seen["decoded"] = z.float() * editor.latent_scale
        return decode(z, *a, **kw)

    monkeypatch.setattr(editor.unet, "forward", spy_unet)
    monkeypatch.setattr(editor.vae, "decode", spy_decode)
    editor.edit_images(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), "make it red", t=0.6,
                       generator=torch.Generator().manual_seed(1))
    eps = ip2p.combine_guidance(*seen["eps"], editor.cfg.guidance_scale, editor.cfg.image_guidance_scale)
    acp = editor.schedule.alphas_cumprod[seen["idx"]]
    x0 = (seen["z"] - (1 - acp).sqrt() * eps) / acp.sqrt()
    assert torch.allclose(seen["decoded"], x0, atol=1e-5), (seen["decoded"] - x0).abs().max()
    a0, s0 = editor.schedule.alphas_cumprod[0].sqrt(), (1 - editor.schedule.alphas_cumprod[0]).sqrt()
    assert (seen["decoded"] - (a0 * x0 + s0 * eps)).abs().max() > 1e-3  # what ending at step 0 would decode


def test_ddim_step_to_zero_is_x0_and_otherwise_ddim(editor):
    z, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    a, s = (v.item() for v in editor.schedule.alpha_sigma(torch.tensor([0.3])))
    assert torch.equal(editor.ddim_step(z, eps, 0.3, 0.0), (z - s * eps) / a)
    a_n, s_n = (v.item() for v in editor.schedule.alpha_sigma(torch.tensor([0.1])))
    assert torch.allclose(editor.ddim_step(z, eps, 0.3, 0.1), a_n * (z - s * eps) / a + s_n * eps)


def test_load_reads_weights_in_the_target_dtype(editor, tmp_path, monkeypatch):
    root = tmp_path / "ip2p"
    for part in ("unet", "vae", "text_encoder", "tokenizer"):
        getattr(editor, part).save_pretrained(root / part)
    asked = {}
    real = ip2p.from_pretrained

    def spy(cls, source, sub, *a, **kw):
        asked[sub] = kw.get("torch_dtype", kw.get("dtype"))
        return real(cls, source, sub, *a, **kw)

    monkeypatch.setattr(ip2p, "from_pretrained", spy)
    half = ip2p.load_ip2p(str(root), dtype=torch.bfloat16, cfg=editor.cfg)
    assert asked == {"unet": torch.bfloat16, "vae": torch.bfloat16, "text_encoder": torch.bfloat16, "tokenizer": None}
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    full = ip2p.load_ip2p(str(root), cfg=editor.cfg)  # fp32 on the CPU: the same editor as the one saved
    img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.allclose(full.edit_images(img, "make it red", generator=g()),
                          editor.edit_images(img, "make it red", generator=g()), atol=1e-5)
