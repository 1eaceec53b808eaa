import pytest
import torch

from pnr.h2d import to_device
from pnr.priors.base import NoiseSchedule
from pnr.render.cameras import random_orbit_views

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_to_device_keeps_values_and_returns_the_tensor_itself_on_its_own_device():
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert to_device(x, "cpu") is x
    assert torch.equal(to_device(x.double(), torch.device("cpu")), x.double())


def test_schedule_copies_alphas_once_per_device_and_indexes_like_the_table():
    sched = NoiseSchedule.cosine(1000)
    t = torch.tensor([0.0, 0.02, 0.5, 0.75, 1.0])
    a, s = sched.alpha_sigma(t)
    acp = sched.alphas_cumprod[(t * 999).round().long()]
    assert torch.equal(a, acp.sqrt()) and torch.equal(s, (1 - acp).sqrt())
    assert sched.on("cpu") is sched.alphas_cumprod  # no copy on its own device


@CUDA
def test_cuda_copies_queue_without_a_host_sync():
    cams = random_orbit_views(2, 4, generator=torch.Generator().manual_seed(0), res=16)
    sched = NoiseSchedule.cosine(1000)
    sched.on("cuda")  # the one copy, outside the checked region
    t = torch.rand(8)
    torch.cuda.set_sync_debug_mode("error")  # raises on any synchronizing call
    try:
        g = cams.to("cuda")
        a, _ = sched.alpha_sigma(to_device(t, "cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(g.c2w.cpu(), cams.c2w) and torch.equal(g.fx.cpu(), cams.fx)
    assert torch.equal(a.cpu(), sched.alpha_sigma(t)[0])
    assert sched.on("cuda") is sched.on(torch.device("cuda", torch.cuda.current_device()))
