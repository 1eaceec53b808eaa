import pytest
import torch

from pnr import rng


def test_cpu_draws_are_the_generators_own_stream():
    # on the CPU nothing changed: same numbers as drawing from the generator directly
    a = rng.rand((7, 5), torch.Generator().manual_seed(3), "cpu")
    assert torch.equal(a, torch.rand(7, 5, generator=torch.Generator().manual_seed(3)))
    b = rng.randn((4, 3), torch.Generator().manual_seed(4), "cpu")
    assert torch.equal(b, torch.randn(4, 3, generator=torch.Generator().manual_seed(4)))
    c = rng.randint(10, (6,), torch.Generator().manual_seed(5), "cpu")
    assert torch.equal(c, torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(5)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_draws_are_a_function_of_the_cpu_generator_state():
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a1, a2 = rng.rand((1000,), g1, "cuda"), rng.rand((1000,), g2, "cuda")
    assert torch.equal(a1, a2)  # same CPU state -> same device numbers (resumable runs)
    assert not torch.equal(rng.rand((1000,), g1, "cuda"), a1)  # and the CPU generator moved on
    assert 0.45 < float(a1.mean()) < 0.55
