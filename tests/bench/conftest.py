"""Shared by the quality-benchmark tests: one torch thread (CPU results are then reproducible run to run, as the
pool workers' are) and a tiny random built-in prior."""

import pytest
import torch

from tests.threads import _one_thread  # noqa: F401  (autouse)


@pytest.fixture(scope="session")
def tiny_prior(tmp_path_factory):
    from pnr.priors.builtin import BuiltinPrior, PriorConfig, save_prior
    from pnr.priors.builtin.data import domain_vocab

    torch.manual_seed(0)
    p = BuiltinPrior(PriorConfig.tiny(domain_vocab())).eval()
    with torch.no_grad():  # zero-initialised output layers would make every prediction 0
        for prm in p.parameters():
            if prm.abs().sum() == 0 and prm.dim() > 1:
                prm.normal_(0, 0.02)
    return save_prior(p, tmp_path_factory.mktemp("prior") / "prior.safetensors")
