"""Tests for aligniform.models: encoders onto the unit hypersphere."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aligniform.models import MODELS, ConvNet, Encoder, ResNet18, SmallAlexNet, build_model, resolve_eval_layer

pytestmark = pytest.mark.usefixtures("single_thread")

# (name, in_channels, image_size, batch) -- small but BatchNorm-friendly batches.
CONFIGS = [
    ("smallalexnet", 3, 64, 4),
    ("resnet18", 3, 32, 4),
    ("convnet", 1, 28, 8),
    ("convnet", 1, 8, 8),
]

EXPECTED_LAYERS = {
    "smallalexnet": (("backbone", "fc6", "fc7", "output"), "fc7"),
    "resnet18": (("backbone", "output"), "backbone"),
    "convnet": (("backbone", "hidden", "output"), "backbone"),
}


@pytest.fixture(scope="module")
def models() -> dict[tuple[str, int, int], Encoder]:
    torch.manual_seed(0)
    return {(name, channels, side): build_model(name, 32, channels, side) for name, channels, side, _ in CONFIGS}


def _inputs(channels: int, side: int, batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("name", "channels", "side", "batch"), CONFIGS)
def test_output_is_unit_norm_and_matches_forward_features(models, name, channels, side, batch):
    model = models[(name, channels, side)].eval()
    x = _inputs(channels, side, batch)
    with torch.no_grad():
        out = model(x)
        features = model.forward_features(x, model.layer_names)
    assert out.shape == (batch, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(batch), rtol=0, atol=1e-5)
    assert list(features) == list(model.layer_names)
    for layer, width in model.feature_dims().items():
        assert features[layer].shape == (batch, width)
    assert torch.equal(features["output"], out)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x, ["output"])["output"], out)


@pytest.mark.parametrize("name", MODELS)
def test_layer_names_and_default_eval_layer(models, name):
    channels, side = {"smallalexnet": (3, 64), "resnet18": (3, 32), "convnet": (1, 28)}[name]
    model = models[(name, channels, side)]
    layers, default = EXPECTED_LAYERS[name]
    assert isinstance(model, Encoder)
    assert model.layer_names == layers
    assert model.default_eval_layer == default
    assert model.dim == 32


def test_forward_features_returns_requested_layers_in_order(models):
    model = models[("convnet", 1, 28)].eval()
    x = _inputs(1, 28, 4)
    with torch.no_grad():
        features = model.forward_features(x, ["hidden", "backbone", "hidden"])
        single = model.forward_features(x, "backbone")
    assert list(features) == ["hidden", "backbone"]
    assert torch.equal(single["backbone"], features["backbone"])


def test_unknown_layer_lists_the_valid_ones(models):
    model = models[("smallalexnet", 3, 64)]
    with pytest.raises(ValueError, match="backbone, fc6, fc7, output"):
        model.forward_features(_inputs(3, 64, 2), ["conv5", "fc7"])
    with pytest.raises(ValueError, match="no layer"):
        model.forward_features(_inputs(3, 64, 2), [])


def test_smallalexnet_matches_the_paper(models):
    model = models[("smallalexnet", 3, 64)]
    assert isinstance(model, SmallAlexNet)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 192, 384, 384, 192]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.kernel_size == 3 and p.stride == 2 for p in pools)
    fc6, fc7, fc8 = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert (fc6.in_features, fc6.out_features) == (192 * 7 * 7, 4096) == (9408, 4096)
    assert (fc7.in_features, fc7.out_features) == (4096, 4096)
    assert (fc8.in_features, fc8.out_features) == (4096, 32)
    # Exact parameter count: bias-free convs/fc6/fc7, BN scale+shift, fc8 with bias.
    conv_weights = 3 * 96 * 9 + 96 * 192 * 9 + 192 * 384 * 9 + 384 * 384 * 9 + 384 * 192 * 9
    batchnorms = 2 * (96 + 192 + 384 + 384 + 192 + 4096 + 4096)
    linears = 9408 * 4096 + 4096 * 4096 + 4096 * 32 + 32
    assert sum(p.numel() for p in model.parameters()) == conv_weights + batchnorms + linears


def test_smallalexnet_initialisation_follows_the_authors(models):
    model = models[("smallalexnet", 3, 64)]
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.numel() > 10_000:
            weight = module.weight.detach()
            assert abs(weight.mean().item()) < 2e-3
            assert weight.std().item() == pytest.approx(0.02, rel=0.05)
        if isinstance(module, nn.Linear) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)


def test_resnet18_has_the_cifar_stem_and_about_11m_parameters(models):
    model = models[("resnet18", 3, 32)]
    assert isinstance(model, ResNet18)
    stem = model.stages["backbone"][0]
    assert isinstance(stem, nn.Conv2d) and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    # torchvision's ResNet-18 body has 11.18 M parameters with a 7x7 stem; the 3x3 stem saves ~7.7 k.
    count = sum(p.numel() for p in model.parameters())
    assert 11.1e6 < count < 11.3e6
    assert model.feature_dims()["backbone"] == 512


def test_resnet18_accepts_other_sizes():
    model = build_model("resnet18", dim=8, in_channels=1, image_size=16).eval()
    with torch.no_grad():
        assert model(_inputs(1, 20, 2)).shape == (2, 8)


def test_convnet_is_small_and_pools_by_size():
    mnist = build_model("convnet", dim=128, in_channels=1, image_size=28)
    digits = build_model("convnet", dim=128, in_channels=1, image_size=8)
    assert isinstance(mnist, ConvNet)
    assert sum(isinstance(m, nn.MaxPool2d) for m in mnist.modules()) == 2  # 28 -> 14 -> 7
    assert sum(isinstance(m, nn.MaxPool2d) for m in digits.modules()) == 1  # 8 -> 4
    assert sum(p.numel() for p in mnist.parameters()) < 1_000_000


# Smaller inputs where the model allows it: backward through ResNet-18 is the slowest test.
GRADIENT_CONFIGS = [
    ("smallalexnet", 3, 64, 4),
    ("resnet18", 3, 8, 4),
    ("convnet", 1, 28, 8),
    ("convnet", 1, 8, 8),
]


@pytest.mark.parametrize(("name", "channels", "side", "batch"), GRADIENT_CONFIGS)
def test_gradients_reach_every_parameter(name, channels, side, batch):
    torch.manual_seed(0)
    model = build_model(name, 16, channels, side).train()
    x = _inputs(channels, side, batch)
    # A loss that depends on the direction of the embeddings (their norm is fixed).
    target = torch.nn.functional.normalize(torch.randn(batch, 16), dim=1)
    loss = (model(x) - target).pow(2).sum()
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize(("name", "channels", "side", "batch"), CONFIGS)
def test_eval_mode_is_deterministic_and_batch_independent(models, name, channels, side, batch):
    model = models[(name, channels, side)].eval()
    x = _inputs(channels, side, batch)
    with torch.no_grad():
        first = model(x)
        second = model(x)
        alone = model(x[:1])
    assert torch.equal(first, second)
    # In eval mode BatchNorm uses running statistics: a row does not depend on its batch.
    torch.testing.assert_close(alone, first[:1], rtol=1e-4, atol=1e-5)


def test_zero_embedding_normalises_without_nans():
    model = build_model("convnet", dim=4, in_channels=1, image_size=8).eval()
    with torch.no_grad():
        for parameter in model.stages["output"].parameters():
            parameter.zero_()
        out = model(_inputs(1, 8, 2))
    assert torch.equal(out, torch.zeros(2, 4))


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="smallalexnet, resnet18, convnet"):
        build_model("vgg16")
    assert MODELS == ("smallalexnet", "resnet18", "convnet")


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("smallalexnet", {"image_size": 32}, "image_size=64"),
        ("resnet18", {"image_size": 4}, "image_size >= 8"),
        ("convnet", {"image_size": 2}, "image_size >= 4"),
        ("convnet", {"dim": 0}, "dim"),
        ("resnet18", {"in_channels": -1}, "in_channels"),
    ],
)
def test_bad_sizes_raise_clear_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, **kwargs)


def test_sizes_accept_numpy_integers_and_reject_bools_and_floats():
    import numpy as np

    assert build_model("convnet", dim=np.int64(4), in_channels=1, image_size=8).dim == 4
    for bad in (True, 4.0):
        with pytest.raises(ValueError, match="`dim` must be a positive integer"):
            build_model("convnet", dim=bad, in_channels=1, image_size=8)


def test_resolve_eval_layer_prefers_the_given_layer_and_checks_it(models):
    model = models[("convnet", 1, 28)]
    assert resolve_eval_layer(model) == "backbone"
    assert resolve_eval_layer(model, None) == model.default_eval_layer
    assert resolve_eval_layer(model, "hidden") == "hidden"
    with pytest.raises(ValueError, match="'fc7' is not a layer of ConvNet; valid layers: backbone, hidden, output"):
        resolve_eval_layer(model, "fc7")
    assert resolve_eval_layer(nn.Linear(2, 2)) == "output"


def test_wrong_input_shape_raises_clear_errors(models):
    with pytest.raises(ValueError, match="64x64"):
        models[("smallalexnet", 3, 64)](_inputs(3, 32, 2))
    with pytest.raises(ValueError, match="3-channel"):
        models[("resnet18", 3, 32)](_inputs(1, 32, 2))
