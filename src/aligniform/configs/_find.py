"""Finding a shipped config by name, from a source checkout or an installed wheel alike."""

from __future__ import annotations

from pathlib import Path

# The YAML files sit next to this module: in the source tree and, as package data, in an installed wheel.
_ROOT = Path(__file__).resolve().parent


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
