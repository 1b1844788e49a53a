"""Linear evaluation: a softmax classifier trained on frozen features (Wang & Isola 2020, App. B.1)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from .._numerics import is_finite_number
from .._validation import check_positive, check_positive_int
from ._checks import Device, Features, Labels, check_labelled_features, check_same_width, drop_unlabelled
from .features import check_encoder_device, extract_features, frozen, layer_features, seeded_global_rng

if TYPE_CHECKING:
    from ..data import ImageDataset

# Milestones of the paper's 100-epoch schedule as fractions of the run, used to scale shorter runs.
PAPER_MILESTONE_FRACTIONS = (0.6, 0.8)
SHORT_EPOCHS = 30


@dataclass
class LinearProbeConfig:
    """Hyper-parameters of the linear probe; the defaults are the paper's (Wang & Isola 2020, App. B.1).

    Attributes:
        epochs: passes over the training features.
        lr: Adam learning rate.
        betas: Adam betas.
        batch_size: training rows per step (the last batch of an epoch may be smaller).
        milestones: epochs after which the learning rate is multiplied by ``gamma``.
        gamma: learning-rate decay factor at each milestone.
        weight_decay: Adam's L2 penalty.
        seed: seeds the initial weights and the shuffling (a private generator:
            the global RNG is never touched).

    Examples:
        >>> LinearProbeConfig().epochs, LinearProbeConfig.short().milestones
        (100, (18, 24))
    """

    epochs: int = 100
    lr: float = 1e-3
    betas: tuple = (0.5, 0.999)
    batch_size: int = 128
    milestones: tuple = (60, 80)
    gamma: float = 0.2
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "epochs")
        check_positive(self.lr, "lr")
        check_positive_int(self.batch_size, "batch_size")
        check_positive(self.gamma, "gamma")
        if len(tuple(self.betas)) != 2 or not all(0 <= float(b) < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        milestones = tuple(self.milestones)
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in milestones) or list(
            milestones
        ) != sorted(set(milestones)):
            raise ValueError(f"milestones must be increasing positive epoch numbers, got {self.milestones!r}")
        decay = float(self.weight_decay)
        if not (is_finite_number(decay) and decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        # Normalise sequences so configs read from YAML (lists) compare equal to the defaults.
        self.betas = tuple(float(b) for b in self.betas)
        self.milestones = milestones

    @classmethod
    def short(cls, **overrides: Any) -> LinearProbeConfig:
        """The paper's schedule shortened to 30 epochs (milestones 18 and 24), enough for small datasets.

        Examples:
            >>> LinearProbeConfig.short(seed=3).epochs
            30
        """
        return cls().with_epochs(SHORT_EPOCHS, **overrides)

    def with_epochs(self, epochs: int, **overrides: Any) -> LinearProbeConfig:
        """A copy running ``epochs`` epochs, milestones at 60 % and 80 % of the run as in the paper.

        Examples:
            >>> LinearProbeConfig().with_epochs(10).milestones
            (6, 8)
        """
        epochs = check_positive_int(epochs, "epochs")
        milestones = sorted({max(1, round(f * epochs)) for f in PAPER_MILESTONE_FRACTIONS} - {epochs})
        return replace(self, epochs=epochs, milestones=tuple(milestones), **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for logging and YAML."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class LinearProbe:
    """A trained linear classifier and its training record.

    Attributes:
        weight: ``(C, D)`` float32 weights (CPU).
        bias: ``(C,)`` float32 biases (CPU).
        classes: ``(C,)`` int64 original label of each output row.
        lr_per_epoch: learning rate used in each epoch.
        loss_per_epoch: mean training cross-entropy of each epoch.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    classes: torch.Tensor
    lr_per_epoch: list[float] = field(default_factory=list)
    loss_per_epoch: list[float] = field(default_factory=list)

    def predict(self, z: Features, chunk_size: int = 65536) -> torch.Tensor:
        """Predicted labels of ``(M, D)`` features (computed on ``z``'s device)."""
        z = torch.as_tensor(z)
        weight, bias, classes = (t.to(z.device) for t in (self.weight, self.bias, self.classes))
        parts = [classes[F.linear(chunk.float(), weight, bias).argmax(1)] for chunk in z.split(chunk_size)]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64, device=z.device)

    def accuracy(self, z: Features, labels: Labels) -> float:
        """Fraction of rows of ``z`` whose predicted label equals ``labels`` (rows labelled < 0 skipped)."""
        z, labels = check_labelled_features(z, labels, "test_z", "test_labels")
        z, labels = drop_unlabelled(z, labels, "test_labels")
        if z.shape[1] != self.weight.shape[1]:
            raise ValueError(f"test_z must have {self.weight.shape[1]} feature columns, got {z.shape[1]}")
        return float((self.predict(z) == labels).double().mean())


def fit_linear_probe(
    train_z: Features, train_labels: Labels, config: LinearProbeConfig | None = None, device: Device = "cpu"
) -> LinearProbe:
    """Train a linear classifier on frozen, precomputed features.

    Adam (``lr``, ``betas``, ``weight_decay``) on the cross-entropy, learning
    rate multiplied by ``gamma`` after each milestone epoch (``MultiStepLR``),
    reshuffled mini-batches every epoch. Initial weights (PyTorch's
    ``nn.Linear`` distribution, U(±1/√D)) and shuffling come from a private
    generator seeded with ``config.seed``, so a run is reproducible and the
    global RNG is left alone. Rows labelled < 0 are dropped.

    Args:
        train_z: ``(N, D)`` features (need not be unit-norm).
        train_labels: ``(N,)`` integer labels.
        config: hyper-parameters; ``None`` means the paper's :class:`LinearProbeConfig`.
        device: where the classifier trains.

    Returns:
        The trained :class:`LinearProbe`.

    Examples:
        >>> import torch
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)
        >>> config = LinearProbeConfig(epochs=20, lr=0.1, milestones=())
        >>> probe = fit_linear_probe(z, torch.tensor([0, 1]).repeat(10), config)
        >>> probe.predict(torch.tensor([[0.9, 0.1]])).tolist()
        [0]
    """
    train_z, train_labels = check_labelled_features(train_z, train_labels, "train_z", "train_labels")
    train_z, train_labels = drop_unlabelled(train_z, train_labels, "train_labels")
    device = torch.device(device)
    features = train_z.to(device=device, dtype=torch.float32)
    with _one_cpu_thread(device):
        return _train(lambda index: features[index], train_labels, train_z.shape[1], config, device)


def linear_probe_accuracy(
    train_z: Features,
    train_labels: Labels,
    test_z: Features,
    test_labels: Labels,
    config: LinearProbeConfig | None = None,
    device: Device = "cpu",
) -> float:
    """Test accuracy (a fraction in [0, 1]) of a linear probe trained on frozen features.

    See :func:`fit_linear_probe` for the training; test rows labelled < 0 are skipped.

    Examples:
        >>> import torch
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)
        >>> y = torch.tensor([0, 1]).repeat(10)
        >>> linear_probe_accuracy(z, y, z, y, LinearProbeConfig(epochs=20, lr=0.1, milestones=()))
        1.0
    """
    train_z, train_labels = check_labelled_features(train_z, train_labels, "train_z", "train_labels")
    test_z, test_labels = check_labelled_features(test_z, test_labels, "test_z", "test_labels")
    check_same_width(train_z, test_z)
    probe = fit_linear_probe(train_z, train_labels, config, device)
    return probe.accuracy(test_z.to(device), test_labels.to(device))


def linear_probe_on_augmented_images(
    encoder: nn.Module,
    layer: str,
    train_set: ImageDataset,
    test_set: ImageDataset,
    augmentation: nn.Module,
    eval_transform: nn.Module,
    config: LinearProbeConfig | None = None,
    device: Device = "cpu",
    batch_size: int = 256,
) -> float:
    """The paper's exact linear evaluation: every step sees freshly augmented training images.

    Each mini-batch of training images is augmented (``augmentation``, e.g.
    RandomResizedCrop + flip) and encoded by the frozen encoder (eval mode,
    no gradient) before the classifier step, so every epoch costs a forward
    pass over the training set: much slower than :func:`linear_probe_accuracy`
    on precomputed features, hence opt-in. The test features use
    ``eval_transform``. The augmentations draw from the global RNG, which is
    seeded with ``config.seed`` for the call and then restored, so the result
    is reproducible and a surrounding training run is not disturbed.

    Args:
        encoder: the frozen encoder, already on ``device``.
        layer: the layer whose features are classified.
        train_set: :class:`~aligniform.data.ImageDataset` to train on (unlabelled images skipped).
        test_set: :class:`~aligniform.data.ImageDataset` to test on.
        augmentation: random training transform.
        eval_transform: deterministic test transform.
        config: probe hyper-parameters (``None``: the paper's).
        device: where the encoder and classifier run.
        batch_size: images per forward pass when extracting the test features.

    Returns:
        Test accuracy, a fraction in [0, 1].
    """
    config = config or LinearProbeConfig()
    device = check_encoder_device(encoder, device)
    labelled = train_set.labels >= 0
    images, labels = train_set.images[labelled], train_set.labels[labelled]
    if len(labels) == 0:
        raise ValueError("train_set has no labelled image to train the linear probe on")
    test_z = extract_features(encoder, test_set.images, eval_transform, [layer], batch_size, device)[layer]

    def augmented_features(index: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            inputs = augmentation(images[index.cpu()].to(device))
            return layer_features(encoder, inputs, [layer])[layer].float()

    with frozen(encoder), seeded_global_rng(config.seed, device):
        probe = _train(augmented_features, labels, test_z.shape[1], config, torch.device(device))
    return probe.accuracy(test_z, test_set.labels)


def _train(
    batch_features: Callable[[torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    in_features: int,
    config: LinearProbeConfig | None,
    device: torch.device,
) -> LinearProbe:
    """Train a linear layer on ``batch_features(index)`` -> labels[index] with the configured schedule."""
    config = config or LinearProbeConfig()
    if not isinstance(config, LinearProbeConfig):
        raise ValueError(f"config must be a LinearProbeConfig or None, got {type(config).__name__}")
    classes, targets = torch.unique(labels, return_inverse=True)
    targets = targets.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    weight, bias = _initial_weights(in_features, len(classes), generator, device)
    optimizer = torch.optim.Adam([weight, bias], lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), config.gamma)
    record = LinearProbe(weight, bias, classes.cpu())
    n = len(targets)
    for _ in range(config.epochs):
        record.lr_per_epoch.append(optimizer.param_groups[0]["lr"])
        total_loss = torch.zeros((), device=device)
        for index in torch.randperm(n, generator=generator).to(device).split(config.batch_size):
            loss = F.cross_entropy(F.linear(batch_features(index), weight, bias), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(index)
        record.loss_per_epoch.append(float(total_loss) / n)  # one sync per epoch, not per step
        scheduler.step()
    record.weight, record.bias = weight.detach().cpu(), bias.detach().cpu()
    return record


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the probe's small matrix products on one CPU thread, then restore the thread count.

    Each step multiplies a 128-row batch by a D x C matrix: too little work to
    split across threads. Measured on mnist5k-sized features (4,000 x 128, 100
    epochs) on 2 busy cores: 1.6 s with one thread, 12-35 s with two, where
    the threads wait on each other every step. One thread also makes the
    float reductions, hence the result, the same on every machine.
    """
    previous = torch.get_num_threads()
    if device.type == "cpu" and previous != 1:
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)
    else:
        yield


def _initial_weights(in_features: int, out_features: int, generator: torch.Generator, device: torch.device):
    # nn.Linear's default init (kaiming-uniform with a=sqrt(5) reduces to U(±1/sqrt(fan_in))), but drawn
    # from our generator: nn.Linear itself would consume the global RNG.
    bound = 1.0 / math.sqrt(in_features)
    weight = torch.empty(out_features, in_features).uniform_(-bound, bound, generator=generator)
    bias = torch.empty(out_features).uniform_(-bound, bound, generator=generator)
    return nn.Parameter(weight.to(device)), nn.Parameter(bias.to(device))
