import pytest
import torch

from aligniform.device import resolve_device, resolve_indexed_device


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_indexed_device("cpu") == torch.device("cpu")


def test_resolve_device_rejects_unknown_or_unavailable():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_indexed_device_pins_bare_cuda():
    assert resolve_indexed_device("cuda") == torch.device("cuda", torch.cuda.current_device())
    assert resolve_device("cuda").index is None
