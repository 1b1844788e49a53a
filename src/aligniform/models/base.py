"""The :class:`Encoder` base class shared by every model in :mod:`aligniform.models`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OUTPUT_LAYER", "Encoder", "L2Normalize", "resolve_eval_layer"]

OUTPUT_LAYER = "output"
"""The name of every encoder's last layer: the L2-normalised embedding."""


class L2Normalize(nn.Module):
    """Scale every row to unit L2 norm (a point on the hypersphere).

    Uses :func:`torch.nn.functional.normalize`, whose ``eps`` keeps an
    all-zero row at zero instead of producing NaNs.

    Examples:
        >>> L2Normalize()(torch.tensor([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, p=2.0, dim=1)


class Encoder(nn.Module):
    """An encoder onto the unit hypersphere, organised as named stages.

    A subclass builds an ordered :class:`torch.nn.ModuleDict` of stages and
    passes it to ``__init__``: each stage maps the previous stage's output to
    its own, and the *name* of a stage is the name of the layer whose output
    it produces. The last stage must be ``"output"`` and end with
    :class:`L2Normalize`. This gives every encoder the same interface:

    * ``forward(x)`` -- the ``(N, dim)`` L2-normalised embedding;
    * ``forward_features(x, layers)`` -- flattened ``(N, D)`` outputs of any
      subset of the stages, in one pass that stops at the last one asked for.

    Args:
        stages: the stages in forward order, keyed by layer name.
        dim: embedding dimension (width of the ``"output"`` layer).
        in_channels: channels the first stage expects.
        default_eval_layer: the layer whose features downstream evaluation
            (linear probe, k-NN) should use by default.
        feature_dims: flattened width of every layer, keyed like ``stages``.

    Attributes:
        dim: embedding dimension.
        in_channels: channels of the input images.
        layer_names: names of the layers, in forward order.
        default_eval_layer: the layer evaluated by default.
        stages: the stage modules.

    Examples:
        >>> from aligniform.models import build_model
        >>> model = build_model("convnet", dim=16, in_channels=1, image_size=28)
        >>> model.layer_names
        ('backbone', 'hidden', 'output')
        >>> feats = model.forward_features(torch.rand(4, 1, 28, 28), ["backbone", "output"])
        >>> {name: tuple(t.shape) for name, t in feats.items()}
        {'backbone': (4, 864), 'output': (4, 16)}
    """

    def __init__(
        self,
        stages: nn.ModuleDict,
        *,
        dim: int,
        in_channels: int,
        default_eval_layer: str,
        feature_dims: Mapping[str, int],
    ) -> None:
        super().__init__()
        names = tuple(stages.keys())
        if not names or names[-1] != "output":
            raise ValueError(f"the last stage must be named 'output', got stages {names}")
        if default_eval_layer not in names:
            raise ValueError(f"default_eval_layer {default_eval_layer!r} is not one of {names}")
        if tuple(feature_dims) != names:
            raise ValueError(f"feature_dims keys {tuple(feature_dims)} must match the stages {names}")
        self.stages = stages
        self.dim = dim
        self.in_channels = in_channels
        self.layer_names: tuple[str, ...] = names
        self.default_eval_layer = default_eval_layer
        self._feature_dims = dict(feature_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed a batch onto the unit hypersphere.

        Args:
            x: ``(N, C, H, W)`` normalised images.

        Returns:
            ``(N, dim)`` rows of unit L2 norm.
        """
        self._check_input(x)
        for stage in self.stages.values():
            x = stage(x)
        return x

    def forward_features(self, x: torch.Tensor, layers: Sequence[str] | str) -> dict[str, torch.Tensor]:
        """Flattened features of the requested layers, computed in one pass.

        Args:
            x: ``(N, C, H, W)`` normalised images.
            layers: layer names from :attr:`layer_names` (a single name is
                accepted too).

        Returns:
            ``{name: (N, D) tensor}`` for each requested layer, in the order
            requested. ``"output"`` is exactly what :meth:`forward` returns.

        Raises:
            ValueError: if a name is not in :attr:`layer_names` or none is
                given.
        """
        wanted = self._check_layers([layers] if isinstance(layers, str) else layers)
        self._check_input(x)
        last = max(self.layer_names.index(name) for name in wanted)
        collected: dict[str, torch.Tensor] = {}
        for index, (name, stage) in enumerate(self.stages.items()):
            x = stage(x)
            if name in wanted:
                collected[name] = x.flatten(1)
            if index == last:  # the later stages are not needed
                break
        return {name: collected[name] for name in wanted}

    def feature_dims(self) -> dict[str, int]:
        """Width of every layer's flattened features, without running the model.

        Returns:
            ``{layer name: D}`` in forward order.
        """
        return dict(self._feature_dims)

    def _check_layers(self, layers: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(layers))  # de-duplicate, keep order
        if not wanted:
            raise ValueError(f"no layer requested; valid layers: {', '.join(self.layer_names)}")
        unknown = [name for name in wanted if name not in self.layer_names]
        if unknown:
            raise ValueError(
                f"unknown layer(s) {', '.join(map(repr, unknown))} for {type(self).__name__}; "
                f"valid layers: {', '.join(self.layer_names)}"
            )
        return wanted

    def _check_input(self, x: torch.Tensor) -> None:
        """Fail early, with a readable message, on inputs the layers cannot take.

        Subclasses with a fixed input size extend this.
        """
        if x.ndim != 4:
            raise ValueError(f"expected an image batch of shape (N, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels}-channel images, got {x.shape[1]} channel(s)"
            )


def resolve_eval_layer(model: nn.Module, layer: str | None = None) -> str:
    """The layer downstream evaluation uses: ``layer`` when given, else the model's default.

    The default is ``model.default_eval_layer`` for an :class:`Encoder` and
    ``"output"`` for a plain module. An explicit ``layer`` is checked against
    ``model.layer_names`` when the model has them (a plain module's layers are
    checked where its features are extracted).

    Args:
        model: an :class:`Encoder` (or any module, which has only ``"output"``).
        layer: the requested layer, e.g. a config's ``eval_layer``; ``None``
            for the model's default.

    Returns:
        The layer name.

    Raises:
        ValueError: ``layer`` is not one of the model's layers.

    Examples:
        >>> from aligniform.models import build_model
        >>> model = build_model("convnet", dim=16, in_channels=1, image_size=8)
        >>> resolve_eval_layer(model), resolve_eval_layer(model, "output")
        ('backbone', 'output')
        >>> resolve_eval_layer(nn.Linear(2, 2))
        'output'
    """
    if layer is None:
        return getattr(model, "default_eval_layer", OUTPUT_LAYER)
    names = getattr(model, "layer_names", None)
    if names is not None and layer not in names:
        raise ValueError(f"layer {layer!r} is not a layer of {type(model).__name__}; valid layers: {', '.join(names)}")
    return layer
