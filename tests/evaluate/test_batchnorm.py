"""BatchNorm statistics recomputed for evaluation (aligniform.evaluate.batchnorm) against direct references."""

import pytest
import torch
from torch import nn

from aligniform import metrics
from aligniform.augment import build_augmentation, build_eval_transform
from aligniform.data import dataset_info, load_dataset
from aligniform.errors import OptionError
from aligniform.evaluate import (
    BATCHNORM_MODES,
    LinearProbeConfig,
    evaluate_encoder,
    extract_features,
    recomputed_batchnorm,
)
from aligniform.evaluate.batchnorm import batchnorm_layers
from aligniform.models import build_model


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits():
    info = dataset_info("digits")
    return {
        "train": load_dataset("digits", split="train"),
        "test": load_dataset("digits", split="test"),
        "eval_transform": build_eval_transform(8, info.mean, info.std, resize=8),
        "augmentation": build_augmentation("digits", 8, info.mean, info.std),
    }


def trained_like_convnet(seed=0):
    """A ConvNet whose running statistics are far from its inputs' (as after training on augmented views)."""
    torch.manual_seed(seed)
    model = build_model("convnet", dim=16, in_channels=1, image_size=8)
    for layer in batchnorm_layers(model):
        layer.running_mean.uniform_(-1, 1)
        layer.running_var.uniform_(0.5, 3)
    return model


def state(model):
    return {name: value.clone() for name, value in model.state_dict().items()}


def test_statistics_are_the_exact_mean_and_unbiased_variance_of_each_layers_inputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    images = torch.rand(50, 1, 2, 3)
    inside = {}
    with recomputed_batchnorm(net, images, None, batch_size=50):
        inside = {i: (net[i].running_mean.clone(), net[i].running_var.clone()) for i in (2, 5)}
    # Reference in float64: one batch of all 50 images, each BatchNorm normalising with the batch's statistics.
    x = images.flatten(1).double()
    first = x @ net[1].weight.double().T + net[1].bias.double()
    normalised = (first - first.mean(0)) / (first.var(0, unbiased=False) + net[2].eps).sqrt()
    second = torch.relu(normalised * net[2].weight.double() + net[2].bias.double())
    second = second @ net[4].weight.double().T + net[4].bias.double()
    for index, inputs in ((2, first), (5, second)):
        mean, var = inside[index]
        torch.testing.assert_close(mean.double(), inputs.mean(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(var.double(), inputs.var(0), atol=1e-5, rtol=1e-5)


def test_batched_and_whole_set_means_agree_and_everything_is_restored():
    model = trained_like_convnet().train()
    model.stages["hidden"].eval()  # a deliberately mixed state must come back as it was
    before = state(model)
    modes = [module.training for module in model.modules()]
    modules = list(model.modules())
    images = torch.randint(0, 256, (70, 1, 8, 8), dtype=torch.uint8)
    rng = torch.get_rng_state()
    with recomputed_batchnorm(model, images, None, batch_size=70):
        whole = [layer.running_mean.clone() for layer in batchnorm_layers(model)]
        assert not torch.equal(whole[0], before["stages.backbone.2.running_mean"])
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    assert [module.training for module in model.modules()] == modes
    assert not any(layer._forward_hooks for layer in batchnorm_layers(model))
    assert all(a is b for a, b in zip(model.modules(), modules, strict=True))  # the stand-ins are swapped out again
    assert torch.equal(torch.get_rng_state(), rng)  # no random number drawn
    # The first layer sees the raw images: its mean does not depend on the batching.
    with recomputed_batchnorm(model, images, None, batch_size=16):  # 5 near-equal batches of 14
        batched = [layer.running_mean.clone() for layer in batchnorm_layers(model)]
    torch.testing.assert_close(batched[0], whole[0], atol=1e-5, rtol=1e-5)


def test_the_layers_do_not_normalise_twice_and_a_lone_batchnorm_is_recomputed():
    # Stand-ins normalise in the layers' place: a layer also normalising in eval mode made the pass ~12 % slower.
    model = trained_like_convnet()
    calls = []
    for layer in batchnorm_layers(model):
        layer.register_forward_hook(lambda *args: calls.append(args[0]))
    images = torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8)
    with recomputed_batchnorm(model, images, None, batch_size=10):
        pass
    assert not calls
    lone = nn.BatchNorm2d(1)
    with recomputed_batchnorm(lone, images, None, batch_size=30):
        torch.testing.assert_close(lone.running_mean, (images.float() / 255).mean().view(1))
    assert torch.equal(lone.running_mean, torch.zeros(1))


def test_eval_mode_output_is_the_training_mode_output_on_one_batch():
    model = trained_like_convnet()
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    inputs = images.float() / 255
    reference = build_model("convnet", dim=16, in_channels=1, image_size=8)
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        trained_mode = reference.train()(inputs)
    with recomputed_batchnorm(model, images, None, batch_size=64), torch.no_grad():
        evaluated = model.eval()(inputs)
    # Only the variance's n/(n-1) correction separates them.
    torch.testing.assert_close(evaluated, trained_mode, atol=2e-2, rtol=0)
    with torch.no_grad():
        stale = model.eval()(inputs)
    assert (stale - trained_mode).abs().max() > 0.1


def test_sync_batchnorm_is_recomputed_without_a_process_group():
    # A SyncBatchNorm in training mode would need a process group (and, on the CPU, fails); evaluation runs
    # on rank 0 only, so the statistics are gathered without calling the layer in training mode.
    model = nn.SyncBatchNorm.convert_sync_batchnorm(trained_like_convnet())
    plain = trained_like_convnet()
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    with recomputed_batchnorm(model, images, None), recomputed_batchnorm(plain, images, None):
        for synced, ordinary in zip(batchnorm_layers(model), batchnorm_layers(plain), strict=True):
            torch.testing.assert_close(synced.running_var, ordinary.running_var)


def test_a_model_without_batchnorm_is_left_alone_and_bad_inputs_are_refused():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    images = torch.rand(3, 1, 2, 2)
    with recomputed_batchnorm(net, images, None) as inside:
        assert inside is net
    model = trained_like_convnet()
    with pytest.raises(ValueError, match="at least 2 images"):
        with recomputed_batchnorm(model, images[:1], None):
            pass
    with pytest.raises(ValueError, match="batch_size"):
        with recomputed_batchnorm(model, torch.rand(4, 1, 8, 8), None, batch_size=0):
            pass
    with pytest.raises(ValueError, match="max_images"):
        with recomputed_batchnorm(model, torch.rand(4, 1, 8, 8), None, max_images=0):
            pass


def test_max_images_uses_a_fixed_subset():
    model = trained_like_convnet()
    images = torch.randint(0, 256, (60, 1, 8, 8), dtype=torch.uint8)
    with recomputed_batchnorm(model, images, None, max_images=20):
        first = batchnorm_layers(model)[0].running_mean.clone()
    with recomputed_batchnorm(model, images, None, max_images=20):
        assert torch.equal(batchnorm_layers(model)[0].running_mean, first)
    with recomputed_batchnorm(model, images, None, max_images=None):
        assert not torch.equal(batchnorm_layers(model)[0].running_mean, first)


def test_evaluate_encoder_recompute_measures_the_encoder_with_recomputed_statistics(digits):
    model = trained_like_convnet()
    train, test, transform = digits["train"], digits["test"], digits["eval_transform"]
    common = dict(eval_transform=transform, augmentation=digits["augmentation"], protocols=("knn",), layer="output")
    before = state(model)
    recomputed = evaluate_encoder(model, train, test, batchnorm="recompute", **common)
    running = evaluate_encoder(model, train, test, **common)
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    assert running == evaluate_encoder(model, train, test, batchnorm="running", **common)  # the default
    with recomputed_batchnorm(model, train.images, transform):
        output = extract_features(model, test.images, transform, ["output"])["output"]
    assert recomputed["uniformity"] == pytest.approx(metrics.uniformity(output), rel=1e-6)
    assert recomputed["uniformity"] != pytest.approx(running["uniformity"], abs=0.05)
    assert BATCHNORM_MODES == ("recompute", "running")
    with pytest.raises(OptionError, match="`batchnorm` must be one of recompute, running"):
        evaluate_encoder(model, train, test, batchnorm="precise", **common)


def test_paper_probe_runs_under_recomputed_statistics(digits):
    model = trained_like_convnet()
    train, test = digits["train"].subset(range(256)), digits["test"]
    results = evaluate_encoder(
        model,
        train,
        test,
        eval_transform=digits["eval_transform"],
        augmentation=digits["augmentation"],
        protocols=("linear",),
        paper_probe=True,
        probe_config=LinearProbeConfig(epochs=1, milestones=(1,), batch_size=64),
        batchnorm="recompute",
    )
    assert 0.1 < results["linear_acc"] <= 1.0
