"""aligniform.config: parse_value, the one reader of option values (YAML, flags, study --set); train.resolve_config."""

import pytest

from aligniform.config import ConfigError, TrainConfig, parse_value
from aligniform.errors import OptionError
from aligniform.studies.options import parse_study_options
from aligniform.studies.theorem1 import Theorem1Options
from aligniform.train import resolve_config


@pytest.mark.parametrize("text", ["true", "True", "YES", "1"])
def test_bool_table_true(text):
    assert parse_value(text, bool, "x") is True and parse_value(text, False, "x") is True


@pytest.mark.parametrize("text", ["false", "No", "0"])
def test_bool_table_false(text):
    assert parse_value(text, bool, "x") is False and parse_value(text, True, "x") is False


@pytest.mark.parametrize(
    "value,kind,expected",
    [
        ("155,170, 185", list[int], [155, 170, 185]),
        ("155 170", list[int], [155, 170]),
        ([3, 5.0], list[int], [3, 5]),
        ("0.1,0.2", (0.5,), (0.1, 0.2)),
        ("a,b", ("contrastive",), ("a", "b")),
        ("4", 1, 4),
        (3.0, int, 3),
        ("2", float, 2.0),
        (5, str | None, "5"),
        (None, int | None, None),
        ("grid.yaml", None, "grid.yaml"),
    ],
)
def test_values_read_as_the_type_or_the_defaults_type(value, kind, expected):
    result = parse_value(value, kind, "x")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "value,kind,message",
    [
        ("maybe", bool, "`flag` must be of type bool, got 'maybe'"),
        ("2.5", int, "`flag` must be of type int, got '2.5'"),
        (2.5, int, "`flag` must be of type int"),
        ("3,x", list[int], r"`flag` must be of type list\[int\], got '3,x'"),
        ("x", int | None, r"`flag` must be of type int \| None"),
        (None, int, "`flag` must not be empty"),
    ],
)
def test_unreadable_values_name_the_option(value, kind, message):
    with pytest.raises(ConfigError, match=message):
        parse_value(value, kind, "flag")


def test_yaml_values_go_through_parse_value():
    config = TrainConfig.from_dict({"milestones": "3, 5", "moco": "yes", "epochs": 4.0, "eval_layer": None})
    assert (config.milestones, config.moco, config.epochs, config.eval_layer) == ([3, 5], True, 4, None)
    with pytest.raises(ConfigError, match="`epochs` must be of type int"):
        TrainConfig.from_dict({"epochs": "many"})


def test_study_options_read_as_their_defaults_types():
    overrides = parse_study_options(Theorem1Options, ["taus=0.1,0.3", "negatives=4,8", "progress=no", "encoder=random"])
    assert overrides == {"taus": (0.1, 0.3), "negatives": (4, 8), "progress": False, "encoder": "random"}
    assert Theorem1Options(**overrides).negatives == (4, 8)
    with pytest.raises(ValueError, match="KEY=VALUE with KEY one of taus"):
        parse_study_options(Theorem1Options, ["nosuch=1"])
    with pytest.raises(ConfigError, match="`repeats` must be of type int"):
        parse_study_options(Theorem1Options, ["repeats=lots"])


# ----------------------------------------------------------------------------- resolve_config: defaults < file < flags


def test_resolve_config_merges_defaults_then_the_file_then_the_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    TrainConfig(epochs=7, dim=16, moco=True, progress=False).to_yaml(path)
    config = resolve_config(path, {"dim": 8, "lr": None})
    assert (config.epochs, config.dim, config.moco, config.progress, config.lr) == (7, 8, True, False, TrainConfig().lr)
    assert resolve_config() == TrainConfig()
    assert resolve_config(str(path)) == TrainConfig.from_yaml(path)


def test_resolve_config_on_resume_starts_from_the_runs_own_configuration(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(dataset="digits", epochs=4, dim=8, out=str(run)).to_yaml(run / "config.yaml")
    config = resolve_config(overrides={"out": str(run), "epochs": 6}, resume=True)
    assert (config.dataset, config.dim, config.epochs, config.out) == ("digits", 8, 6, str(run))
    # The same overrides without resume start from the defaults; a folder without a run keeps them too.
    assert resolve_config(overrides={"out": str(run)}).dataset == TrainConfig().dataset
    assert resolve_config(overrides={"out": str(tmp_path / "empty")}, resume=True).dataset == TrainConfig().dataset
    # An explicit file wins over the run's configuration.
    other = tmp_path / "other.yaml"
    TrainConfig(dataset="mnist5k", dim=32).to_yaml(other)
    assert resolve_config(other, {"out": str(run)}, resume=True).dim == 32


def test_resolve_config_errors_are_option_errors_naming_the_option(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(tmp_path / "missing.yaml")
    with pytest.raises(OptionError) as raised:
        resolve_config(overrides={"out": " "})
    assert raised.value.options == ("out",) and "`out` is empty" in str(raised.value)
    assert issubclass(ConfigError, OptionError) and issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "value,kind", [(True, int), (False, int), (True, float), (True, int | None), ([1, True], list[int])]
)
def test_a_yaml_boolean_is_no_number(value, kind):
    with pytest.raises(ConfigError, match="must be of type"):
        parse_value(value, kind, "epochs")


@pytest.mark.parametrize(
    "content,message",
    [
        (b"epochs: [3\n", r"config file .*c\.yaml is not valid YAML \(line 2, column 1\): expected ',' or '\]'"),
        (b"a: 1\n  b: 2\n", r"is not valid YAML \(line 2, column 4\): mapping values are not allowed here$"),
        (b"dataset: \xe9\n", r"config file .*c\.yaml is not UTF-8 text \(byte 9 cannot be decoded\)"),
        (b"epochs: yes\n", r"config file .*c\.yaml: epochs must be of type int, got True"),
    ],
)
def test_config_file_errors_are_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as raised:
        TrainConfig.from_yaml(path)
    assert "\n" not in str(raised.value)


def test_a_config_file_that_is_a_folder_says_so(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        TrainConfig.from_yaml(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
