"""The shipped configs: found by name as package data, and every one of them valid."""

from pathlib import Path

import pytest

from aligniform.config import TrainConfig
from aligniform.configs import config_names, config_path
from aligniform.sweep import load_grid

ROOT = Path(__file__).resolve().parents[1]


def test_config_names_and_paths():
    assert set(config_names()) >= {"mnist5k", "stl10_paper", "cifar10_resnet18", "sweeps/mnist5k_correlation"}
    assert config_path("mnist5k") == config_path("mnist5k.yaml")
    assert config_path("sweeps/mnist5k_correlation").parent.name == "sweeps"


@pytest.mark.parametrize("name", ["nope", "../config", "/etc/passwd"])
def test_unknown_config_names_list_the_shipped_ones(name):
    with pytest.raises(FileNotFoundError, match="shipped configs: cifar10_resnet18"):
        config_path(name)


def test_every_shipped_config_is_valid():
    for name in config_names():
        if name.startswith("sweeps/"):
            assert load_grid(config_path(name))
        else:
            TrainConfig.from_yaml(config_path(name))


def test_configs_are_package_data():
    """A wheel ships only the data files pyproject.toml names: every folder of configs must be listed."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    package = ROOT / "src" / "aligniform"
    for folder in {path.relative_to(package).parent.as_posix() for path in package.glob("configs/**/*.yaml")}:
        assert f'"{folder}/*.yaml"' in pyproject
