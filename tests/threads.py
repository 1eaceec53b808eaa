"""One torch thread for a test directory (import `_one_thread` into its conftest.py): small CPU ops run far faster
single-threaded when the CI machine's cores are shared, and CPU results are then reproducible run to run (2-thread
kernels are not, under contention: docs/reproducibility.md)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
