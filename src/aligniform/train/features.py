"""What the trained encoder feeds the objective: unit embeddings, or the raw ones for objectives that want them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..config import ConfigError, TrainConfig
from ..models import L2Normalize


class RawOutput:
    """Switches the final L2 normalisation of encoders off while active (Barlow Twins wants raw features).

    Every encoder ends in :class:`~aligniform.models.L2Normalize`; a forward hook on those modules returns their
    input instead of their output while :meth:`active` is entered, so the training step gets the features before
    normalisation and every other use of the encoder (monitoring, evaluation, checkpoints) is unchanged. The hooks
    are plain functions, so a copy of the encoder (MoCo's key encoder) made after them carries them too.

    Examples:
        >>> from aligniform.models import build_model
        >>> model = build_model("convnet", dim=4, in_channels=1, image_size=28)
        >>> raw = RawOutput(model)
        >>> with raw.active():
        ...     bool((model(torch.rand(3, 1, 28, 28)).norm(dim=1) - 1).abs().max() > 1e-3)
        True
        >>> bool((model(torch.rand(3, 1, 28, 28)).norm(dim=1) - 1).abs().max() < 1e-5)
        True
    """

    def __init__(self, *encoders: nn.Module) -> None:
        self._on = False

        # A function, not a bound method: deepcopy keeps functions as they are (a method's object would be copied,
        # and the copy's hooks would follow a flag of their own).
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
            return inputs[0] if self._on else None  # None keeps the normalised output

        for encoder in encoders:
            for module in encoder.modules():
                if isinstance(module, L2Normalize):
                    module.register_forward_hook(hook)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Raw (unnormalised) outputs inside the block."""
        self._on = True
        try:
            yield
        finally:
            self._on = False


def check_data_options(config: TrainConfig, train_size: int, labelled_size: int, world_size: int) -> None:
    """The global batch splits evenly over the processes and fits in the training set; so does ``knn_k``.

    Checked when the trainer is built, before the run folder is written: a value the data cannot take must not
    fail at the end of the first epoch, after the folder was started (or an old run replaced).

    Args:
        config: the run.
        train_size: images in the training split.
        labelled_size: labelled samples the k-NN accuracy searches (the smallest such set of the run).
        world_size: processes sharing each batch.

    Raises:
        ConfigError: naming the option.

    Examples:
        >>> check_data_options(TrainConfig(knn_k=5000), 1400, 1294, 1)
        Traceback (most recent call last):
        ...
        aligniform.config.ConfigError: `knn_k` (5000) must not exceed the number of labelled training samples the \
k-NN accuracy searches (1294)
    """
    if config.batch_size % world_size:
        raise ConfigError(
            f"`batch_size` {config.batch_size} must be divisible by the number of processes ({world_size})"
        )
    if config.batch_size > train_size:
        raise ConfigError(f"`batch_size` {config.batch_size} is larger than the training set ({train_size} images)")
    if config.knn_k > labelled_size:
        raise ConfigError(
            f"`knn_k` ({config.knn_k}) must not exceed the number of labelled training samples the k-NN accuracy "
            f"searches ({labelled_size})"
        )
