import pytest
import torch.distributed as dist

from tests.support.distributed import TORCHRUN_VARIABLES


@pytest.fixture
def no_torchrun(monkeypatch):
    """A plain single process: none of torchrun's variables, no process group."""
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not dist.is_initialized()
