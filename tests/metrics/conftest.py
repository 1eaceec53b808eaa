import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Small CPU ops run far faster single-threaded when the CI machine's cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
