"""Tests for aligniform.augment: batched, seeded, device-agnostic augmentation."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch
import torch.nn.functional as F

from aligniform.augment import (
    AUGMENTATIONS,
    Augmentation,
    build_augmentation,
    build_eval_transform,
    two_views,
)

pytestmark = pytest.mark.usefixtures("single_thread")


RGB_MEAN = (0.4467, 0.4398, 0.4066)
RGB_STD = (0.2603, 0.2566, 0.2713)
GRAY_MEAN = (0.1307,)
GRAY_STD = (0.3081,)


def _uint8_images(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8, generator=generator)


def _denormalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)
    return images * std_t + mean_t


def _horizontal_ramp(batch: int, channels: int, side: int) -> torch.Tensor:
    """Images whose value grows from 0 (left column) to 1 (right column)."""
    ramp = torch.linspace(0.0, 1.0, side).view(1, 1, 1, side)
    return ramp.expand(batch, channels, side, side).contiguous()


# (kind, channels, input side, output side, mean, std)
PIPELINES = [
    ("paper", 3, 96, 64, RGB_MEAN, RGB_STD),
    ("paper", 3, 32, 32, RGB_MEAN, RGB_STD),
    ("digits", 1, 28, 28, GRAY_MEAN, GRAY_STD),
    ("digits", 1, 8, 8, GRAY_MEAN, GRAY_STD),
    ("none", 1, 28, 28, GRAY_MEAN, GRAY_STD),
    ("none", 3, 40, 32, RGB_MEAN, RGB_STD),
]


@pytest.mark.parametrize(("kind", "channels", "in_side", "out_side", "mean", "std"), PIPELINES)
def test_output_shape_dtype_and_range(kind, channels, in_side, out_side, mean, std):
    aug = build_augmentation(kind, out_side, mean, std)
    torch.manual_seed(0)
    out = aug(_uint8_images(16, channels, in_side, in_side))
    assert isinstance(aug, Augmentation)
    assert out.shape == (16, channels, out_side, out_side)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    pixels = _denormalize(out, mean, std)
    assert pixels.min().item() >= -1e-5
    assert pixels.max().item() <= 1 + 1e-5


@pytest.mark.parametrize(("kind", "channels", "in_side", "out_side", "mean", "std"), PIPELINES)
def test_uint8_and_float_inputs_agree_under_the_same_seed(kind, channels, in_side, out_side, mean, std):
    aug = build_augmentation(kind, out_side, mean, std)
    images = _uint8_images(8, channels, in_side, in_side)
    torch.manual_seed(123)
    from_uint8 = aug(images)
    torch.manual_seed(123)
    from_float = aug(images.float() / 255.0)
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=1e-6)


def test_none_is_exactly_float_conversion_and_normalisation():
    images = _uint8_images(4, 1, 28, 28)
    out = build_augmentation("none", 28, GRAY_MEAN, GRAY_STD)(images)
    expected = (images.float() / 255.0 - GRAY_MEAN[0]) / GRAY_STD[0]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("kind", "channels", "side", "mean", "std"),
    [
        ("paper", 3, 32, RGB_MEAN, RGB_STD),
        ("digits", 1, 28, GRAY_MEAN, GRAY_STD),
    ],
)
def test_two_views_differ_and_are_reproducible(kind, channels, side, mean, std):
    aug = build_augmentation(kind, side, mean, std)
    images = _uint8_images(32, channels, side, side)
    torch.manual_seed(7)
    view_a, view_b = two_views(aug, images)
    # Every image gets two different views (a coincidence would need equal draws).
    per_image_difference = (view_a - view_b).abs().flatten(1).amax(dim=1)
    assert (per_image_difference > 1e-3).all()
    torch.manual_seed(7)
    again_a, again_b = two_views(aug, images)
    assert torch.equal(view_a, again_a) and torch.equal(view_b, again_b)
    torch.manual_seed(8)
    other_a, _ = two_views(aug, images)
    assert not torch.equal(view_a, other_a)


def test_saving_and_restoring_the_global_rng_state_replays_the_augmentation():
    # This is how the trainer resumes exactly: kornia samples from torch's global CPU RNG.
    aug = build_augmentation("paper", 32, RGB_MEAN, RGB_STD)
    images = _uint8_images(16, 3, 40, 40)
    torch.manual_seed(0)
    aug(images)  # advance the state somewhere arbitrary
    state = torch.get_rng_state()
    first = aug(images)
    torch.set_rng_state(state)
    replay = aug(images)
    assert torch.equal(first, replay)


def test_views_have_independent_crop_parameters():
    aug = build_augmentation("paper", 32, RGB_MEAN, RGB_STD)
    crop = next(m for m in aug.modules() if isinstance(m, K.RandomResizedCrop))
    images = _uint8_images(64, 3, 48, 48)
    torch.manual_seed(3)
    aug(images)
    boxes_a = crop._params["src"].clone()
    aug(images)
    boxes_b = crop._params["src"].clone()
    assert boxes_a.shape == (64, 4, 2)
    # Across the batch, images get different crops ...
    assert torch.unique(boxes_a.flatten(1), dim=0).shape[0] > 32
    # ... and the two views of the same image get different crops (almost always).
    same_box = (boxes_a == boxes_b).flatten(1).all(dim=1)
    assert same_box.float().mean().item() < 0.1


def test_digits_pipeline_never_flips():
    # On a left-to-right ramp a horizontal flip reverses the gradient; crops,
    # small rotations and shifts keep it increasing in the image centre.
    aug = build_augmentation("digits", 28, [0.0], [1.0])
    torch.manual_seed(0)
    out = aug(_horizontal_ramp(512, 1, 28))
    centre_rows = out[:, 0, 10:18]
    gradient = centre_rows[..., 16:20].mean(dim=(1, 2)) - centre_rows[..., 8:12].mean(dim=(1, 2))
    assert (gradient > 0).all()


def test_paper_pipeline_flips_about_half_the_images():
    # The same ramp test detects the flips the paper pipeline does make.
    aug = build_augmentation("paper", 28, [0.0] * 3, [1.0] * 3)
    torch.manual_seed(0)
    out = aug(_horizontal_ramp(512, 3, 28)).mean(dim=1)
    gradient = out[:, 10:18, 16:20].mean(dim=(1, 2)) - out[:, 10:18, 8:12].mean(dim=(1, 2))
    flipped = (gradient < 0).float().mean().item()
    assert 0.4 < flipped < 0.6


def test_paper_pipeline_rejects_grayscale_input():
    aug = build_augmentation("paper", 28, RGB_MEAN, RGB_STD)
    with pytest.raises(ValueError, match="digits"):
        aug(_uint8_images(2, 1, 28, 28))


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ValueError, match="paper, digits, none"):
        build_augmentation("simclr", 32, RGB_MEAN, RGB_STD)
    assert AUGMENTATIONS == ("paper", "digits", "none")


@pytest.mark.parametrize(("mean", "std"), [((0.5, 0.5), (0.2,)), ((0.5,), (0.0,)), ((), ())])
def test_bad_normalisation_statistics_are_rejected(mean, std):
    with pytest.raises(ValueError):
        build_augmentation("none", 8, mean, std)


def test_bad_image_size_and_input_rank_are_rejected():
    with pytest.raises(ValueError, match="image_size"):
        build_augmentation("digits", 0, GRAY_MEAN, GRAY_STD)
    aug = build_augmentation("digits", 8, GRAY_MEAN, GRAY_STD)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        aug(torch.rand(1, 8, 8))


def test_eval_transform_centre_crops_exact_pixels():
    images = torch.arange(2 * 10 * 14, dtype=torch.float32).view(2, 1, 10, 14) / 280.0
    # resize equal to the shorter side: no interpolation, an exact crop.
    evaluate = build_eval_transform(6, mean=[0.0], std=[1.0], resize=10)
    out = evaluate(images)
    assert out.shape == (2, 1, 6, 6)
    assert torch.equal(out, images[:, :, 2:8, 4:10])
    # Odd margins round like torchvision's CenterCrop: round(3 / 2) = 2.
    out_odd = build_eval_transform(7, mean=[0.0], std=[1.0], resize=10)(images)
    assert torch.equal(out_odd, images[:, :, 2:9, 4:11])


def test_eval_transform_default_resize_is_the_papers_70_to_64():
    images = _uint8_images(3, 3, 96, 96)
    evaluate = build_eval_transform(64, RGB_MEAN, RGB_STD)
    out = evaluate(images)
    assert out.shape == (3, 3, 64, 64)
    resized = F.interpolate(images.float() / 255.0, size=(70, 70), mode="bilinear", antialias=True)
    expected = (resized[..., 3:67, 3:67] - torch.tensor(RGB_MEAN).view(1, 3, 1, 1)) / torch.tensor(RGB_STD).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    # A 70x70 input is only cropped.
    small = _uint8_images(2, 3, 70, 70)
    expected_small = (small[..., 3:67, 3:67].float() / 255.0 - torch.tensor(RGB_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        RGB_STD
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(evaluate(small), expected_small, rtol=0, atol=1e-6)


def test_eval_transform_is_deterministic_and_ignores_the_rng():
    evaluate = build_eval_transform(28, GRAY_MEAN, GRAY_STD, resize=32)
    images = _uint8_images(4, 1, 28, 28)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = evaluate(images)
    assert torch.equal(torch.get_rng_state(), state)  # it drew nothing
    torch.manual_seed(1)
    assert torch.equal(evaluate(images), first)


def test_eval_transform_rejects_resize_smaller_than_crop():
    with pytest.raises(ValueError, match="resize"):
        build_eval_transform(32, RGB_MEAN, RGB_STD, resize=30)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_parameters():
    aug = build_augmentation("digits", 28, GRAY_MEAN, GRAY_STD)
    images = _uint8_images(16, 1, 28, 28)
    torch.manual_seed(0)
    on_cpu = aug(images)
    torch.manual_seed(0)
    on_gpu = aug(images.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-4)
