"""`aligniform train`'s flags are generated from TrainConfig's fields: every field, its help, its type."""

import dataclasses

import pytest

from aligniform.cli import build_parser
from aligniform.cli.train import config_fields, config_flag, config_from_args
from aligniform.config import TrainConfig

# The flags the hand-kept table had before the flags were generated: none may disappear or change name.
EARLIER_FLAGS = (
    "--dataset --data-dir --model --objective --epochs --batch-size --lr --dim --seed --device --out --schedule "
    "--milestones --lr-decay --momentum --weight-decay --precision --queue-size --moco-momentum --augmentation "
    "--image-size --input-size --val-fraction --eval-layer --linear-probe --download --moco --sync-bn "
    "--no-progress --resume --config"
).split()


def train_parser():
    commands = next(action for action in build_parser()._actions if action.dest == "command")
    return commands.choices["train"]


def test_every_field_is_a_flag_with_help():
    parser = train_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    assert set(EARLIER_FLAGS) <= flags
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata.get("help"), f"TrainConfig.{field.name} has no help text"
        assert config_flag(field) in flags
    assert {field.name for field in config_fields()} == set(TrainConfig.option_names())


def parse(*argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_flags_set_fields_and_unset_flags_keep_the_defaults():
    assert parse() == TrainConfig()
    config = parse(
        "--epochs", "3", "--lr", "0.5", "--milestones", "2,3", "--image-size", "28", "--eval-layer", "backbone",
        "--moco", "--sync-bn", "--download", "--no-progress", "--knn-k", "7",
    )  # fmt: skip
    assert (config.epochs, config.lr, config.milestones, config.image_size) == (3, 0.5, [2, 3], 28)
    assert (config.eval_layer, config.moco, config.sync_bn, config.download, config.progress) == (
        "backbone",
        True,
        True,
        True,
        False,
    )
    assert config.knn_k == 7


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    TrainConfig(epochs=7, dim=16, moco=True, progress=False).to_yaml(path)
    config = parse("--config", str(path), "--dim", "8")
    assert (config.epochs, config.dim, config.moco, config.progress) == (7, 8, True, False)


def test_a_new_field_needs_no_cli_edit(monkeypatch):
    @dataclasses.dataclass
    class Extended(TrainConfig):
        warmup_epochs: int = dataclasses.field(default=0, metadata={"help": "epochs of linear lr warm-up"})
        hidden: str = dataclasses.field(default="x", metadata={"help": "not a flag", "cli": False})

    import aligniform.cli.train as train_module

    monkeypatch.setattr(train_module, "TrainConfig", Extended)
    args = build_parser().parse_args(["train", "--warmup-epochs", "2"])
    assert args.warmup_epochs == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--hidden", "y"])
