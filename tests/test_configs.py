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


def test_shipped_configs_are_found_by_name_where_a_path_is_accepted(tmp_path, monkeypatch):
    from aligniform.config import ConfigError
    from aligniform.configs import find_config
    from aligniform.train import resolve_config

    monkeypatch.chdir(tmp_path)
    assert resolve_config("mnist5k") == TrainConfig.from_yaml(config_path("mnist5k"))
    assert resolve_config("mnist5k.yaml", {"epochs": 2}).epochs == 2
    assert len(load_grid("mnist5k_correlation")) == len(load_grid("sweeps/mnist5k_correlation")) == 24
    # A file that exists wins over the shipped config of that name.
    (tmp_path / "mnist5k").write_text("dataset: digits\nepochs: 1\n")
    assert resolve_config("mnist5k").dataset == "digits"
    assert find_config("mnist5k") == Path("mnist5k")
    # Grids are not training configs, nor the other way round; an unknown name lists the shipped ones.
    with pytest.raises(
        ConfigError, match="config file mnist5k_correlation does not exist, .* cifar10_resnet18, mnist5k"
    ):
        resolve_config("mnist5k_correlation")
    with pytest.raises(ConfigError, match="sweep grid file stl10_paper does not exist, .* figure5_digits"):
        load_grid("stl10_paper")


def test_configs_command_lists_every_shipped_config_with_a_description(capsys):
    from aligniform.cli import main
    from aligniform.configs import config_description

    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for name in config_names():
        short = name.removeprefix("sweeps/")
        assert any(line.split()[:1] == [short] for line in out.splitlines()), name
        assert config_description(name)
    assert (
        out.index("training configs") < out.index("mnist5k ") < out.index("sweep grids") < out.index("figure5_digits")
    )
    assert main(["configs", "--path"]) == 0
    assert str(config_path("mnist5k")) in capsys.readouterr().out


def test_train_and_sweep_refuse_an_unknown_name_in_one_line(tmp_path, capsys):
    from aligniform.cli import main

    assert main(["train", "--config", "mnist5kk", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "config file mnist5kk does not exist" in error and "mnist5k, stl10_paper" in error
    assert main(["sweep", "nope", "--out", str(tmp_path / "sweep")]) == 2
    assert "sweep grid file nope does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()
