"""aligniform.config: parse_value, the one reader of option values (YAML, train flags, study --set)."""

import pytest

from aligniform.config import ConfigError, TrainConfig, parse_value
from aligniform.studies.options import parse_study_options
from aligniform.studies.theorem1 import Theorem1Options


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
        ("maybe", bool, "flag must be of type bool, got 'maybe'"),
        ("2.5", int, "flag must be of type int, got '2.5'"),
        (2.5, int, "flag must be of type int"),
        ("3,x", list[int], r"flag must be of type list\[int\], got '3,x'"),
        ("x", int | None, r"flag must be of type int \| None"),
        (None, int, "flag must not be empty"),
    ],
)
def test_unreadable_values_name_the_option(value, kind, message):
    with pytest.raises(ConfigError, match=message):
        parse_value(value, kind, "flag")


def test_yaml_values_go_through_parse_value():
    config = TrainConfig.from_dict({"milestones": "3, 5", "moco": "yes", "epochs": 4.0, "eval_layer": None})
    assert (config.milestones, config.moco, config.epochs, config.eval_layer) == ([3, 5], True, 4, None)
    with pytest.raises(ConfigError, match="epochs must be of type int"):
        TrainConfig.from_dict({"epochs": "many"})


def test_study_options_read_as_their_defaults_types():
    overrides = parse_study_options(Theorem1Options, ["taus=0.1,0.3", "negatives=4,8", "progress=no", "encoder=random"])
    assert overrides == {"taus": (0.1, 0.3), "negatives": (4, 8), "progress": False, "encoder": "random"}
    assert Theorem1Options(**overrides).negatives == (4, 8)
    with pytest.raises(ValueError, match="KEY=VALUE with KEY one of taus"):
        parse_study_options(Theorem1Options, ["nosuch=1"])
    with pytest.raises(ConfigError, match="repeats must be of type int"):
        parse_study_options(Theorem1Options, ["repeats=lots"])
