"""Reusing a finished run only when its saved config matches (aligniform.train.reuse)."""

import json

from aligniform.config import TrainConfig
from aligniform.train.reuse import finished_results, matches, same_config


def finished_run(folder, config, results=None):
    folder.mkdir(parents=True, exist_ok=True)
    config.to_yaml(folder / "config.yaml")
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))


def test_same_config_ignores_output_device_and_progress():
    config = TrainConfig(epochs=2)
    assert same_config(config.replace(out="elsewhere", device="cpu", progress=False), config)
    assert not same_config(config.replace(lr=0.5), config)


def test_finished_results_need_results_and_a_matching_config(tmp_path):
    config = TrainConfig(epochs=2, out=str(tmp_path / "run"))
    assert finished_results(tmp_path / "run", config) is None  # no folder
    finished_run(tmp_path / "run", config)
    assert matches(tmp_path / "run", config) and finished_results(tmp_path / "run", config) is None  # not finished
    finished_run(tmp_path / "run", config, {"knn_acc": 0.9})
    assert finished_results(tmp_path / "run", config.replace(device="cpu")) == {"knn_acc": 0.9}
    assert finished_results(tmp_path / "run", config.replace(epochs=3)) is None  # options changed


def test_unreadable_configs_or_results_are_not_finished(tmp_path):
    config = TrainConfig()
    finished_run(tmp_path, config, {"knn_acc": 0.9})
    (tmp_path / "results.json").write_text('{"knn_acc": 0.')  # cut short
    assert finished_results(tmp_path, config) is None
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "config.yaml").write_text("no_such_option: 1\n")
    assert not matches(tmp_path, config) and finished_results(tmp_path, config) is None
