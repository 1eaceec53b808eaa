import pytest
import torch

from pnr.cuda_graph import GraphCache


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_replay_equals_eager_and_captures_once_per_shape():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).cuda()
    cache = GraphCache(lambda x, s: net(x) * s, max_graphs=2)
    for n in (5, 5, 7, 5):
        x, s = torch.randn(n, 8, device="cuda"), torch.rand(1, device="cuda")
        with torch.no_grad():
            assert torch.equal(cache(x, s), net(x) * s)
    assert len(cache) == 2
    with torch.no_grad():  # weights updated in place are seen by the captured graph
        net[0].weight.mul_(2)
        x, s = torch.randn(5, 8, device="cuda"), torch.rand(1, device="cuda")
        assert torch.equal(cache(x, s), net(x) * s)
