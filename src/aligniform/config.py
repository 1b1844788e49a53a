"""Training configuration: one dataclass, YAML in and YAML out, overridable from the CLI."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ._numerics import is_finite_number
from ._validation import check_positive_int
from .errors import OptionError, render_options
from .objective import Objective

SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
PROBES = ("short", "paper", "none")
#: Upper bounds of sizes that allocate memory, and of the seed (torch seeds with a 64-bit integer).
MAX_DIM = 65536
MAX_IMAGE_SIZE = 4096
MAX_SEED = 2**62


class ConfigError(OptionError):
    """A configuration value or file is invalid; the message says which and what was expected.

    An :class:`~aligniform.errors.OptionError` (so also a ``ValueError``): options it names in backticks are
    spelled by each front end its own way.
    """


@dataclass
class TrainConfig:
    """Everything that defines a training run. Saved beside the run as ``config.yaml``.

    The learning rate follows the paper: the optimiser's rate is
    ``lr × batch_size / 256`` (``lr`` is the base rate per 256 samples).

    The ``train`` command's flags are generated from the fields: each field's
    ``metadata`` holds its ``"help"`` (naming other options as backticked field
    names, like error messages, see :mod:`aligniform.errors`), its ``"flag"``
    where that is not the field's name in dashes (a bool that defaults to True
    is switched off by its flag, as ``progress`` is), and ``"cli": False`` for a
    field that is no flag. A new field therefore needs no change in the command line.

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> config = TrainConfig(dataset="digits", epochs=2)
        >>> config.scaled_lr == config.lr * config.batch_size / 256
        True
    """

    # data
    dataset: str = field(
        default="mnist5k", metadata={"help": "dataset name: mnist5k, digits, cifar10, cifar100, stl10, imagefolder"}
    )
    data_dir: str | None = field(default=None, metadata={"help": "folder holding (or caching) the dataset files"})
    download: bool = field(
        default=False, metadata={"help": "download the dataset into `data_dir` if missing (cifar10/cifar100/stl10)"}
    )
    val_fraction: float = field(
        default=0.1, metadata={"help": "fraction of the labelled training set held out for monitoring"}
    )
    augmentation: str | None = field(default=None, metadata={"help": "paper, digits or none (default: the dataset's)"})
    image_size: int | None = field(default=None, metadata={"help": "resize images to this size when loading"})
    input_size: int | None = field(
        default=None, metadata={"help": "side of the encoder's input crops (default: the images' size)"}
    )
    # encoder and objective
    model: str = field(default="convnet", metadata={"help": "encoder: convnet, resnet18, smallalexnet"})
    dim: int = field(default=128, metadata={"help": "embedding dimension"})
    objective: str = field(
        default="align(alpha=2) + uniform(t=2)",
        metadata={"help": 'loss spec, e.g. "0.98*align(alpha=2) + 0.96*uniform(t=2)"'},
    )
    # optimisation
    epochs: int = field(default=20, metadata={"help": "number of epochs"})
    batch_size: int = field(default=256, metadata={"help": "global batch size (split across processes under torchrun)"})
    lr: float = field(
        default=0.12, metadata={"help": "base learning rate per 256 samples (the optimiser uses lr x batch / 256)"}
    )
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=1e-4, metadata={"help": "SGD weight decay"})
    schedule: str = field(default="step", metadata={"help": "lr schedule: step, cosine or constant"})
    milestones: list[int] = field(
        default_factory=list,
        metadata={"help": "epochs where a step schedule multiplies the lr by `lr_decay`, e.g. 155,170,185"},
    )
    lr_decay: float = field(default=0.1, metadata={"help": "factor of the step schedule"})
    warmup_epochs: int = field(
        default=0,
        metadata={
            "help": "linear lr warm-up over the first N epochs, per step, on top of the schedule (0: none); "
            "keeps large early steps, e.g. of a small temperature, from collapsing the representation"
        },
    )
    precision: str = field(default="fp32", metadata={"help": "fp32, bf16 or fp16 (autocast)"})
    grad_cache: int | None = field(
        default=None,
        metadata={
            "help": "GradCache: the loss and its gradient on the full global batch while the encoder embeds at most "
            "this many images per pass (>= 2; two-view training puts both views of CHUNK/2 samples in a pass)"
        },
    )
    # MoCo: momentum encoder + feature queue feeding the losses' queue=
    moco: bool = field(
        default=False, metadata={"help": "MoCo mode: momentum encoder + feature queue fed to the losses"}
    )
    queue_size: int = field(default=16384, metadata={"help": "MoCo queue length"})
    moco_momentum: float = field(default=0.99, metadata={"help": "MoCo key-encoder momentum"})
    moco_bn_groups: int = field(
        default=1,
        metadata={
            "help": "MoCo shuffle-BN: the key batch is shuffled (across processes under torchrun) and each process's "
            "share is split into this many BatchNorm groups; in one process e.g. 8 acts like 8 GPUs"
        },
    )
    # distributed
    sync_bn: bool = field(default=False, metadata={"help": "SyncBatchNorm across processes under torchrun"})
    # evaluation
    eval_layer: str | None = field(
        default=None, metadata={"help": "layer evaluated by the probes (default: the model's)"}
    )
    knn_k: int = field(
        default=5, metadata={"help": "k of the k-NN accuracy monitored during training and reported at the end"}
    )
    linear_probe: str = field(default="short", metadata={"help": "final linear probe: short, paper or none"})
    validate_every: int | None = field(
        default=None,
        metadata={
            "help": "held-out monitoring (k-NN accuracy, alignment, uniformity; best.pt) every this many epochs and "
            "at the last one (default: as often as keeps it within 8 percent of the training's encoder passes, e.g. "
            "every 5th epoch on mnist5k); it trains nothing, so the weights and final results do not depend on it"
        },
    )
    # run
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    out: str = field(default="runs/run", metadata={"help": "output folder of the run"})
    progress: bool = field(default=True, metadata={"help": "no progress bars", "flag": "--no-progress"})

    def __post_init__(self) -> None:
        self.validate()

    @property
    def scaled_lr(self) -> float:
        """The optimiser's learning rate: ``lr × batch_size / 256``."""
        return self.lr * self.batch_size / 256

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        _positive_int(self, "epochs", "batch_size", "dim", "knn_k", "queue_size", "moco_bn_groups")
        if self.validate_every is not None:
            _positive_int(self, "validate_every")
        if self.grad_cache is not None:
            _positive_int(self, "grad_cache")
            if self.grad_cache < 2:
                raise ConfigError(f"`grad_cache` must be >= 2 (images per encoder pass), got {self.grad_cache!r}")
        _positive_float(self, "lr")
        for name in ("momentum", "moco_momentum"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ConfigError(f"`{name}` must lie in [0, 1), got {value!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"`weight_decay` must be >= 0, got {self.weight_decay!r}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"`lr_decay` must lie in (0, 1], got {self.lr_decay!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"`val_fraction` must lie in [0, 1), got {self.val_fraction!r}")
        if self.batch_size < 2:
            raise ConfigError("`batch_size` must be at least 2: the losses need pairs of samples")
        if not str(self.out).strip():
            raise ConfigError("`out` is empty: give the run's folder, e.g. `out`=runs/a")
        _choice(self, "schedule", SCHEDULES)
        _choice(self, "precision", PRECISIONS)
        _choice(self, "device", DEVICES)
        _choice(self, "linear_probe", PROBES)
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ConfigError(f"`warmup_epochs` must be a whole number of epochs >= 0, got {self.warmup_epochs!r}")
        if any(not isinstance(m, int) or m <= 0 for m in self.milestones):
            raise ConfigError(f"`milestones` must be positive epoch numbers, got {self.milestones!r}")
        try:
            Objective.parse(self.objective)
        except ValueError as error:
            raise ConfigError(f"`objective`: {error}") from None
        _positive_int(self, *(name for name in ("image_size", "input_size") if getattr(self, name) is not None))
        # Bounds far above any real run, so a typo is refused here, not by an allocation (or torch's seeding) later.
        _at_most(self, "dim", MAX_DIM)
        for name in ("image_size", "input_size"):
            if getattr(self, name) is not None:
                _at_most(self, name, MAX_IMAGE_SIZE)
        if isinstance(self.seed, int) and abs(self.seed) > MAX_SEED:
            raise ConfigError(f"`seed` must lie between -2**62 and 2**62, got {self.seed!r}")

    # ------------------------------------------------------------------ YAML

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (the YAML's content)."""
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML text; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a mapping of option: value (values are coerced to the options' types)."""
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
        """A config from a YAML file of option: value."""
        values = read_yaml_file(path, "config file") or {}
        try:
            return cls.from_dict(values)
        except ConfigError as error:  # the value came from the file: say which, naming options as its keys
            raise ConfigError(f"config file {path}: {render_options(str(error), lambda name: name)}") from None

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with some options changed (``None`` values are ignored, as for unset CLI flags)."""
        values = self.to_dict()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(values)

    @classmethod
    def option_names(cls) -> list[str]:
        """The names of all options, in field order."""
        return [f.name for f in fields(cls)]


def read_yaml_file(path: str | Path, what: str) -> Any:
    """The content of a YAML file, or a one-line :class:`ConfigError` naming the file and what is wrong with it.

    A missing file, a folder, text that is not UTF-8 and a YAML syntax error (with its line, column and
    problem) each get one line; yaml's own message takes five to seven.

    Args:
        path: the file.
        what: what the file is, to start the message: ``"config file"``, ``"sweep grid file"``.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.yaml").write_text("epochs: [3")
        >>> read_yaml_file(folder / "a.yaml", "config file")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.config.ConfigError: config file .../a.yaml is not valid YAML (line ...): expected ',' or ']', ...
        >>> read_yaml_file(folder, "config file")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.config.ConfigError: config file ... is a folder, not a file; give the path of a YAML file
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder, not a file; give the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {' '.join(str(problem).split())}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {error.start} cannot be decoded); save it as UTF-8"
        ) from None


def parse_value(value: Any, default_or_type: Any, name: str) -> Any:
    """Read a value given as text (a flag, ``--set KEY=VALUE``) or by YAML as an option's type.

    The type is either a type annotation (``int``, ``float``, ``bool``, ``str``,
    ``list[int]``, ``tuple[float, ...]``, ``X | None``) or, for options known
    only by their default, the type of that default (a tuple default gives a
    tuple of its first item's type; ``None`` gives optional text).

    Booleans read ``true/false``, ``yes/no`` and ``1/0`` (any case); lists and
    tuples read ``a,b,c`` (commas and/or spaces); an int refuses a fractional
    number; ``None`` is accepted only by an optional type.

    Args:
        value: the text, or a value YAML has already typed.
        default_or_type: a type annotation, or a default value whose type is meant.
        name: the option's name, for the error message.

    Returns:
        The value as the option's type.

    Raises:
        ConfigError: the value cannot be read as that type.

    Examples:
        >>> parse_value("155,170 185", list[int], "milestones")
        [155, 170, 185]
        >>> parse_value("Yes", False, "reuse")
        True
        >>> parse_value("0.1,0.5", (0.2,), "taus")
        (0.1, 0.5)
        >>> parse_value(None, int | None, "image_size") is None
        True
        >>> parse_value("2.5", int, "epochs")
        Traceback (most recent call last):
        ...
        aligniform.config.ConfigError: `epochs` must be of type int, got '2.5'
    """
    kind = default_or_type if _is_annotation(default_or_type) else _type_of(default_or_type)
    optional = type(None) in typing.get_args(kind)
    if optional:
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if value is None:
        if optional:
            return None
        raise ConfigError(f"`{name}` must not be empty")
    try:
        return _read(value, kind)
    except (TypeError, ValueError):
        described = _type_name(kind) + (" | None" if optional else "")
        raise ConfigError(f"`{name}` must be of type {described}, got {value!r}") from None


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _is_annotation(value: Any) -> bool:
    return isinstance(value, type) or typing.get_origin(value) is not None


def _type_of(default: Any) -> Any:
    if default is None:
        return str | None
    if isinstance(default, (tuple, list)):
        item = type(default[0]) if default else float
        return types.GenericAlias(tuple, (item, ...)) if isinstance(default, tuple) else types.GenericAlias(list, item)
    return type(default)


def _type_name(kind: Any) -> str:
    return kind.__name__ if isinstance(kind, type) and typing.get_origin(kind) is None else str(kind)


def _read(value: Any, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        item = typing.get_args(kind)[0] if typing.get_args(kind) else str
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        return origin(_read(one, item) for one in items)
    if kind is bool:
        if isinstance(value, str):
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError(value)
            return value.lower() in _TRUE
        return bool(value)
    if kind in (int, float) and isinstance(value, bool):
        raise ValueError(value)  # YAML's `true` is no number (int(True) would quietly read it as 1)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind is float:
        return float(value)
    if kind is str:
        return str(value)
    return kind(value)


_TYPES = typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    """Coerce a YAML/CLI value to the field's type, with a clear error when impossible."""
    return parse_value(value, _TYPES[name], name)


def _positive_int(config: TrainConfig, *names: str) -> None:
    for name in names:
        try:
            check_positive_int(getattr(config, name), name)
        except ValueError as error:
            raise ConfigError(str(error)) from None


def _at_most(config: TrainConfig, name: str, bound: int) -> None:
    value = getattr(config, name)
    if value > bound:
        raise ConfigError(f"`{name}` ({value}) must be at most {bound}")


def _positive_float(config: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not is_finite_number(value) or value <= 0:
            raise ConfigError(f"`{name}` must be a positive number, got {value!r}")


def _choice(config: TrainConfig, name: str, choices: Sequence[str]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"`{name}` must be one of {', '.join(choices)}, got {value!r}")
