"""Finding a shipped config by name, from a source checkout or an installed wheel alike."""

from __future__ import annotations

from pathlib import Path

# The YAML files sit next to this module: in the source tree and, as package data, in an installed wheel.
_ROOT = Path(__file__).resolve().parent

#: Grids live in this sub-folder; ``aligniform sweep`` finds them with or without the prefix.
SWEEPS = "sweeps"

# One line per shipped config for `aligniform configs`; a file missing here is described by its first comment.
_DESCRIPTIONS = {
    "mnist5k": "the CPU recipe behind the demo: ConvNet on the embedded 5,000-image MNIST subset, 30 epochs",
    "stl10_paper": "Wang & Isola's STL-10 recipe exactly (SmallAlexNet, 64x64, 200 epochs; a GPU job)",
    "cifar10_resnet18": "Wang & Liu's CIFAR-10 setting (ResNet-18, MoCo queue of 16384, 200 epochs; a GPU job)",
    "sweeps/mnist5k_correlation": "the correlation study in miniature: 24 encoders on mnist5k",
    "sweeps/figure5_mnist5k": "Wang & Isola's Figure 5, pre-registered: 44 encoders on mnist5k",
    "sweeps/figure5_digits": "Wang & Isola's Figure 5, pre-registered: 44 encoders on sklearn digits",
    "sweeps/figure5_seeds_mnist5k": "Figure 5's seed-spread precondition: 3 seeds of align + uniform on mnist5k",
    "sweeps/figure5_seeds_digits": "Figure 5's seed-spread precondition: 3 seeds of align + uniform on digits",
    "sweeps/budget_ratio_mnist5k": "W&I's weight-ratio ablation at 30 and 90 epochs, 3 seeds, on mnist5k",
    "sweeps/budget_ratio_digits": "W&I's weight-ratio ablation at 30 and 90 epochs, 3 seeds, on digits",
    "sweeps/budget_debiased_mnist5k": "debiased contrastive (Chuang et al. 2020) against NT-Xent on mnist5k",
}


def config_names() -> list[str]:
    """The names of the shipped configs, e.g. ``"mnist5k"`` and ``"sweeps/mnist5k_correlation"``."""
    return sorted(path.relative_to(_ROOT).with_suffix("").as_posix() for path in _ROOT.rglob("*.yaml"))


def config_path(name: str) -> Path:
    """The file of a shipped config, by name: ``"mnist5k"``, ``"stl10_paper.yaml"``, ``"sweeps/mnist5k_correlation"``.

    Raises:
        FileNotFoundError: no shipped config has that name (the message lists them).

    Examples:
        >>> config_path("sweeps/mnist5k_correlation.yaml").parent.name
        'sweeps'
    """
    relative = Path(str(name))
    if relative.suffix != ".yaml":
        relative = relative.with_name(relative.name + ".yaml")
    path = _ROOT / relative
    # Names only: no absolute paths or "..", which would leave the package folder.
    if relative.is_absolute() or ".." in relative.parts or not path.is_file():
        raise FileNotFoundError(f"no shipped config named {name!r}; shipped configs: {', '.join(config_names())}")
    return path


def config_description(name: str) -> str:
    """One line saying what a shipped config is (``aligniform configs``).

    Examples:
        >>> config_description("mnist5k")[:22]
        'the CPU recipe behind '
    """
    key = config_path(name).relative_to(_ROOT).with_suffix("").as_posix()
    if key in _DESCRIPTIONS:
        return _DESCRIPTIONS[key]
    for line in config_path(name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and line.strip("# "):
            return line.strip("# ")
    return ""


def find_config(
    source: str | Path, missing: type[Exception] = FileNotFoundError, what: str = "config file", *, grid: bool = False
) -> Path:
    """The file a config argument means: an existing path wins, else the shipped config of that name.

    ``"mnist5k"`` is ``configs/mnist5k.yaml`` unless a file ``mnist5k`` exists where the program runs. With
    ``grid=True`` (sweep grids) the names are those under ``sweeps/``, with or without the prefix:
    ``"mnist5k_correlation"`` is ``configs/sweeps/mnist5k_correlation.yaml``; without it they are the
    training configs (not under ``sweeps/``).

    Args:
        source: a path or a shipped config's name.
        missing: the exception raised when it is neither (the caller's own: ``ConfigError``).
        what: how the message names the file.
        grid: look among the sweep grids instead of the training configs.

    Raises:
        missing: no such file and no shipped config of that name (the message lists the shipped ones).

    Examples:
        >>> find_config("mnist5k").name, find_config("mnist5k_correlation", grid=True).parent.name
        ('mnist5k.yaml', 'sweeps')
        >>> find_config("mnist5kk")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: config file mnist5kk does not exist, and no shipped config has that name; ...
    """
    path = Path(source).expanduser()
    if path.exists():
        return path
    names = [name for name in config_names() if name.startswith(f"{SWEEPS}/") == grid]
    text = Path(str(source)).with_suffix("").as_posix() if str(source).endswith(".yaml") else str(source)
    for candidate in (text, f"{SWEEPS}/{text}") if grid else (text,):
        if candidate in names:
            return config_path(candidate)
    shown = [name.removeprefix(f"{SWEEPS}/") for name in names]
    raise missing(
        f"{what} {source} does not exist, and no shipped config has that name; the shipped ones are "
        f"{', '.join(shown)} (the command aligniform configs lists them)"
    )
