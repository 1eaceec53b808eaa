import torch
import torch.nn.functional as F

from pnr.metrics.clip_metrics import (directional_consistency_from_embeddings,
                                      directional_similarity_from_embeddings)


def _unit(x):
    return F.normalize(x, dim=-1)


def test_directional_similarity_known_answers():
    g = torch.Generator().manual_seed(0)
    src = _unit(torch.randn(5, 16, generator=g))
    t_src, t_tgt = _unit(torch.randn(16, generator=g)), _unit(torch.randn(16, generator=g))
    d = t_tgt - t_src
    # the image moved exactly along the text direction: similarity 1 in every view
    assert torch.allclose(directional_similarity_from_embeddings(src, src + 0.3 * d, t_src, t_tgt), torch.ones(5), atol=1e-5)
    # against it: -1; no change at all: 0
    assert torch.allclose(directional_similarity_from_embeddings(src, src - 0.3 * d, t_src, t_tgt), -torch.ones(5), atol=1e-5)
    assert torch.all(directional_similarity_from_embeddings(src, src.clone(), t_src, t_tgt) == 0)


def test_directional_consistency_known_answers():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(6, 8, generator=g)
    # an edit that adds the same offset in every view changes across frames exactly like the source
    c = directional_consistency_from_embeddings(src, src + torch.randn(8, generator=g))
    assert c.shape == (6,) and torch.allclose(c, torch.ones(6), atol=1e-5)
    # an edit whose frame-to-frame change is the reverse of the source's: -1
    c = directional_consistency_from_embeddings(src, -src, cyclic=False)
    assert c.shape == (5,) and torch.allclose(c, -torch.ones(5), atol=1e-5)
