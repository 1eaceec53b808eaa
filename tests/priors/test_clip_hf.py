"""OpenAI-CLIP wrapper on a tiny random CLIPModel saved in the transformers layout (nothing downloaded)."""

import json

import pytest
import torch

pytest.importorskip("transformers")

from pnr.errors import CheckpointError  # noqa: E402
from pnr.priors.clip_hf import CLIP_MODELS, load_clip  # noqa: E402
from pnr.priors.sd import tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel

    root = tmp_path_factory.mktemp("clip")
    tok = tiny_tokenizer(root, words=("red", "blue", "chair"))
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=77,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id),
                     vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                        num_attention_heads=4, image_size=32, patch_size=8),
                     projection_dim=16)
    CLIPModel(cfg).save_pretrained(root)
    tok.save_pretrained(root)
    (root / "preprocessor_config.json").write_text(json.dumps({"crop_size": {"height": 32, "width": 32},
                                                               "image_mean": [0.5, 0.5, 0.5],
                                                               "image_std": [0.25, 0.25, 0.25]}))
    return root


def test_embeddings_are_unit_norm_and_informative(clip_dir):
    enc = load_clip(str(clip_dir))
    assert enc.image_size == 32 and torch.allclose(enc.mean.flatten(), torch.full((3,), 0.5))
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 3, 48, 64, generator=g)  # non-square, larger than the input: resize + centre crop
    e = enc.encode_images(imgs)
    assert e.shape == (3, 16) and torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(e[0], e[1])
    assert torch.equal(enc.encode_image(imgs), e)  # the domain encoder's method name works too
    t = enc.encode_text(["a red chair", "a blue chair"])
    assert t.shape == (2, 16) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(t[0], t[1])
    # preprocessing is differentiable (CLIP losses / guidance on renders)
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    enc.encode_images(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_works_with_the_metrics(clip_dir):
    from pnr.metrics.clip_metrics import directional_similarity

    enc = load_clip(str(clip_dir))
    g = torch.Generator().manual_seed(1)
    src, edit = torch.rand(4, 3, 32, 32, generator=g), torch.rand(4, 3, 32, 32, generator=g)
    s = directional_similarity(enc, src, edit, "a chair", "a red chair")
    assert -1.0 <= s <= 1.0 and s != 0.0


def test_paper_names_and_missing_weights():
    assert set(CLIP_MODELS) == {"ViT-B/32", "ViT-B/16", "ViT-L/14"}
    with pytest.raises(CheckpointError) as e:
        load_clip("ViT-B/32", offline=True)
    assert "openai/clip-vit-base-patch32" in str(e.value) and "load_clip(PATH)" in str(e.value)
