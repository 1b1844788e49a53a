"""Training configuration: one dataclass, YAML in and YAML out, overridable from the CLI."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .objective import Objective

SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
PROBES = ("short", "paper", "none")


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message says which and what was expected."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. Saved beside the run as ``config.yaml``.

    The learning rate follows the paper: the optimiser's rate is
    ``lr × batch_size / 256`` (``lr`` is the base rate per 256 samples).

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> config = TrainConfig(dataset="digits", epochs=2)
        >>> config.scaled_lr == config.lr * config.batch_size / 256
        True
    """

    # data
    dataset: str = "mnist5k"
    data_dir: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    augmentation: str | None = None  # default: the dataset's ("digits" or "paper")
    image_size: int | None = None  # resize images on loading; default: the dataset's native size
    input_size: int | None = None  # side of the encoder's input (augmentation crops); default: the images' size
    # encoder and objective
    model: str = "convnet"
    dim: int = 128
    objective: str = "align(alpha=2) + uniform(t=2)"
    # optimisation
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.12
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: list[int] = field(default_factory=list)
    lr_decay: float = 0.1
    precision: str = "fp32"
    # MoCo: momentum encoder + feature queue feeding the losses' queue=
    moco: bool = False
    queue_size: int = 16384
    moco_momentum: float = 0.99
    # distributed
    sync_bn: bool = False
    # evaluation
    eval_layer: str | None = None
    knn_k: int = 5
    linear_probe: str = "short"
    # run
    seed: int = 0
    device: str = "auto"
    out: str = "runs/run"
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / 256

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        _positive_int(self, "epochs", "batch_size", "dim", "knn_k", "queue_size")
        _positive_float(self, "lr")
        for name in ("momentum", "moco_momentum"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {value!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must lie in (0, 1], got {self.lr_decay!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must lie in [0, 1), got {self.val_fraction!r}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2: the losses need pairs of samples")
        _choice(self, "schedule", SCHEDULES)
        _choice(self, "precision", PRECISIONS)
        _choice(self, "device", DEVICES)
        _choice(self, "linear_probe", PROBES)
        if any(not isinstance(m, int) or m <= 0 for m in self.milestones):
            raise ConfigError(f"milestones must be positive epoch numbers, got {self.milestones!r}")
        try:
            Objective.parse(self.objective)
        except ValueError as error:
            raise ConfigError(f"objective: {error}") from None
        for name in ("image_size", "input_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")

    # ------------------------------------------------------------------ YAML

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML text; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a mapping of option: value, got {type(values).__name__}")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(
                f"unknown config option(s) {', '.join(unknown)}; valid options: {', '.join(cls.option_names())}"
            )
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        return cls.from_dict(values)

    def replace(self, **overrides) -> TrainConfig:
        """A copy with some options changed (``None`` values are ignored, as for unset CLI flags)."""
        values = self.to_dict()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(values)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _coerce(name: str, value):
    """Coerce YAML/CLI values to the field's type, with a clear error when impossible."""
    kind = str(_TYPES[name])
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"{name} must not be empty")
    try:
        if kind.startswith("list"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split()]
            return [int(v) for v in value]
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be of type {kind}, got {value!r}") from None


def _positive_int(config, *names):
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _positive_float(config, *names):
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _choice(config, name, choices):
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
