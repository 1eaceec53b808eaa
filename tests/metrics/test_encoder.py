import json

import pytest
import torch

from pnr.errors import CheckpointError, PromptError
from pnr.metrics.encoder import DomainEncoder, EncoderConfig, load_encoder, save_encoder
from pnr.metrics.train_encoder import TOY_VOCAB, TrainConfig, multi_positive_clip_loss, toy_caption, toy_render, toy_sampler, train_encoder

TINY = dict(res=32, widths=(8, 16), blocks_per_stage=1, embed_dim=32, text_width=32, text_layers=1, text_heads=2, max_tokens=8)


def test_save_load_roundtrip_fp16(tmp_path):
    torch.manual_seed(0)
    m = DomainEncoder(EncoderConfig(vocab=TOY_VOCAB, **TINY)).eval()
    save_encoder(m, tmp_path, {"note": "test"})
    m2 = load_encoder(tmp_path)
    assert m2.meta["note"] == "test"
    img = torch.rand(2, 3, 40, 40)
    a, b = m.encode_image(img), m2.encode_image(img)
    assert torch.allclose(a, b, atol=2e-2)
    assert torch.allclose(m.encode_text(["a red disc"]), m2.encode_text(["a red disc"]), atol=2e-2)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="encoder.safetensors"):
        load_encoder(tmp_path)
    m = DomainEncoder(EncoderConfig(vocab=TOY_VOCAB, **TINY))
    save_encoder(m, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"nothing": 1}))
    with pytest.raises(CheckpointError, match="config.json"):
        load_encoder(tmp_path)
    save_encoder(m, tmp_path)
    (tmp_path / "encoder.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="encoder.safetensors"):
        load_encoder(tmp_path)


def test_unknown_words_raise_prompt_error():
    m = DomainEncoder(EncoderConfig(vocab=TOY_VOCAB, **TINY))
    with pytest.raises(PromptError, match="zebra"):
        m.encode_text(["a zebra disc"])
    assert m.encode_text(["a zebra disc"], strict=False).shape == (1, 32)


def test_multi_positive_loss_prefers_matching_pairs():
    e = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    pos = torch.eye(4, dtype=torch.bool)
    good = multi_positive_clip_loss(e, e, pos, torch.tensor(20.0))
    bad = multi_positive_clip_loss(e, e.roll(1, 0), pos, torch.tensor(20.0))
    assert good < bad


def test_training_loop_learns_the_toy_domain():
    """A few hundred CPU steps on coloured discs/squares: zero-shot retrieval of all 8 classes."""
    cfg = EncoderConfig(vocab=TOY_VOCAB, **TINY)
    cfg.res = 16
    tcfg = TrainConfig(batch=32, lr=3e-3, warmup_steps=10, max_steps=100, max_seconds=1e9, log_every=20)
    m, log = train_encoder(cfg, tcfg, toy_sampler(16), progress=False)
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0] - 0.5
    pairs = [(c, s) for c in ("red", "green", "blue", "yellow") for s in ("disc", "square")]
    with torch.no_grad():
        t = m.encode_text([toy_caption({"colour": c, "shape": s}) for c, s in pairs])
        i = m.encode_image(torch.stack([toy_render(c, s, 16) for c, s in pairs]))
    acc = ((i @ t.t()).argmax(1) == torch.arange(8)).float().mean()
    assert acc >= 0.75
