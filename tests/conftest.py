import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a module of tiny-batch tests: as fast, and immune to the 10-50x
    slow-down of OpenMP barriers when other processes load the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
