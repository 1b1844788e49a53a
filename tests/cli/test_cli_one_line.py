"""Issue 19: every bad command-line input is one line on stderr, exit code 2 (130 after Ctrl-C).

Usage errors (argparse), YAML and decoding errors of config and grid files, oversized sweep grids, misleading
refusals and study options that used to fail only after ``--out`` was created: each is one line
``aligniform COMMAND: error: ...`` naming the option or file, without a traceback, and a command given an
existing folder leaves every file in it byte-identical (SHA-256 before and after).
"""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from aligniform.cli import main
from aligniform.cli.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR
from tests.support.cli import check_one_line, refused

SRC = Path(__file__).resolve().parents[2] / "src"


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], command: str, *fragments: str) -> str:
    """``argv`` is refused by the parser: exit code 2 and one line (no usage block)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == EXIT_USER_ERROR
    return check_one_line(capsys.readouterr().err, command, *fragments)


@pytest.fixture
def existing_out(tmp_path: Path) -> Path:
    """An output folder that already holds files a refused command must leave alone."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.md").write_text("keep me\n")
    (out / "results.json").write_text('{"knn_acc": 0.5}\n')
    return out


# ----------------------------------------------------------------------------- argparse


def test_an_invalid_flag_value_is_one_line_pointing_at_help(capsys):
    line = usage_error(capsys, ["train", "--epochs", "nan"], "train")
    assert line == "aligniform train: error: argument --epochs: invalid int value: 'nan' (see aligniform train --help)"


@pytest.mark.parametrize(
    "argv,command,fragments",
    [
        (["sweep", "grid.yaml"], "sweep", ["--out"]),
        (["study", "nosuch", "--out", "x"], "study", ["argument name", "nosuch"]),
        (["train", "--no-such-flag"], "train", ["unrecognized arguments: --no-such-flag"]),
        (["nosuch"], "", ["invalid choice", "nosuch"]),
        ([], "", ["COMMAND"]),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, command, fragments):
    if command:
        usage_error(capsys, argv, command, *fragments)
        return
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == EXIT_USER_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aligniform: error: ")
    assert all(fragment in lines[0] for fragment in fragments)


def test_help_stays_complete(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: aligniform train") and "--epochs" in help_text and "--overwrite" in help_text


# ----------------------------------------------------------------------------- config files


@pytest.mark.parametrize(
    "content,fragments",
    [
        (b"epochs: [3\n", ["is not valid YAML (line 2, column 1)", "expected ',' or ']'"]),
        (b"epochs: 3\n  lr: 0.1\n", ["is not valid YAML (line 2, column 5)", "mapping values are not allowed"]),
        (b"epochs: 3\ndataset: \xff\xfe\n", ["is not UTF-8 text", "save it as UTF-8"]),
        (b"epochs: true\n", ["config.yaml: epochs must be of type int, got True"]),
        (b"lr: false\n", ["config.yaml: lr must be of type float, got False"]),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(capsys, tmp_path, existing_out, content, fragments):
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    argv = ["train", "--config", str(config), "--out", str(existing_out), "--no-progress"]
    refused(capsys, tmp_path, argv, "train", str(config), *fragments)


def test_a_config_that_is_a_folder_says_so(capsys, tmp_path, existing_out):
    argv = ["train", "--config", str(tmp_path), "--out", str(existing_out)]
    line = refused(capsys, tmp_path, argv, "train", f"{tmp_path} is a folder, not a file")
    assert "does not exist" not in line


def test_a_sweep_grid_that_is_not_utf8_or_a_folder_is_one_line(capsys, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_bytes(b"grid: {seed: [0, 1]}\n# \xe9t\xe9\n")
    out = tmp_path / "sweep"
    refused(capsys, tmp_path, ["sweep", str(grid), "--out", str(out)], "sweep", str(grid), "is not UTF-8 text")
    refused(capsys, tmp_path, ["sweep", str(tmp_path), "--out", str(out)], "sweep", "is a folder, not a file")


# ----------------------------------------------------------------------------- grids


def write_grid(path: Path, options: int, values: int) -> Path:
    grid = {f"option{index}": list(range(values)) for index in range(options)}
    path.write_text(yaml.safe_dump({"grid": grid}))
    return path


@pytest.mark.parametrize("extra", [[], ["--emit-commands"]])
def test_a_huge_sweep_grid_is_refused_before_it_is_expanded(capsys, tmp_path, existing_out, extra):
    grid = write_grid(tmp_path / "huge.yaml", options=10, values=8)  # 8**10, about 1e9 runs
    started = time.perf_counter()
    argv = ["sweep", str(grid), "--out", str(existing_out), *extra]
    refused(capsys, tmp_path, argv, "sweep", "makes 1,073,741,824 runs", "more than --max-runs (10,000)")
    assert time.perf_counter() - started < 10  # counted, not expanded


def test_max_runs_lets_a_larger_grid_through(capsys, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"base": {"dataset": "digits"}, "grid": {"seed": [0, 1, 2], "dim": [4, 8]}}))
    out = tmp_path / "sweep"
    refused(capsys, tmp_path, ["sweep", str(grid), "--out", str(out), "--max-runs", "5"], "sweep", "6 runs")
    assert main(["sweep", str(grid), "--out", str(out), "--max-runs", "6", "--emit-commands"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 6


def test_study_correlation_refuses_a_huge_grid_before_creating_out(capsys, tmp_path):
    grid = write_grid(tmp_path / "huge.yaml", options=10, values=8)
    out = tmp_path / "study"
    argv = ["study", "correlation", "--set", f"grid={grid}", "--out", str(out)]
    refused(capsys, tmp_path, argv, "study", "more than --set max_runs (10,000)", "raise --set max_runs")
    assert not out.exists()


# ----------------------------------------------------------------------------- studies


@pytest.mark.parametrize(
    "study,assignment,fragment",
    [
        ("theorem1", "taus=nan", "--set taus must hold finite numbers"),
        ("theorem1", "spread=inf", "--set spread must be a finite number"),
        ("theorem1", "view_noise=-1", "--set view_noise must be >= 0"),
        ("theorem1", "dataset=nosuch", "--set dataset: unknown dataset 'nosuch'"),
        ("theorem1", "device=tpu", "--set device must be one of auto, cpu, cuda"),
        ("theorem1", "encoder_objective=nosuch(1)", "--set encoder_objective: "),
        ("theorem1", "encoder_epochs=true", "--set encoder_epochs must be of type int"),
        ("temperature", "taus=0.1,nan", "--set taus must hold finite numbers"),
        ("temperature", "model=nosuch", "--set model must be one of"),
        ("temperature", "linear_probe=long", "--set linear_probe must be one of short, paper, none"),
        ("temperature", "schedule=linear", "--set schedule must be one of"),
        ("temperature", "batch_size=1", "--set batch_size must be at least 2"),
        ("family", "lr=nan", "--set lr must be a finite number"),
        ("family", "dataset=nosuch", "--set dataset: unknown dataset"),
        ("latent-classes", "lr=-1", "--set lr must be a positive number"),
        ("latent-classes", "within_class_spread=nan", "--set within_class_spread must be a finite number"),
        ("correlation", "collapse_threshold=nan", "--set collapse_threshold must be a finite number"),
        ("correlation", "max_runs=0", "--set max_runs must be a positive integer"),
    ],
)
def test_study_options_are_checked_before_out_is_touched(capsys, tmp_path, existing_out, study, assignment, fragment):
    new_out = tmp_path / "new"
    for out in (new_out, existing_out):
        argv = ["study", study, "--set", assignment, "--out", str(out)]
        refused(capsys, tmp_path, argv, "study", fragment)
    assert not new_out.exists()


def test_summary_update_file_that_is_not_utf8_names_it(capsys, tmp_path):
    update = tmp_path / "REPRODUCTION.md"
    update.write_bytes(b"# Reproduction\n\xff\n")
    argv = ["study", "summary", "--set", f"update={update}", "--out", str(tmp_path / "summary")]
    refused(capsys, tmp_path, argv, "study", f"--set update {update} is not UTF-8 text")


# ----------------------------------------------------------------------------- Ctrl-C

INTERRUPTED_TWICE = textwrap.dedent(
    """
    import argparse, os, signal, sys, time
    from aligniform.cli.errors import run_handler

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if the tests run in background

    def handler(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # a second one while the first is being cleaned up
            time.sleep(0.2)
            print("cleanup finished", file=sys.stderr)
        return 0

    sys.exit(run_handler(argparse.Namespace(command="train", handler=handler)))
    """
)


def test_a_second_ctrl_c_during_cleanup_still_exits_130():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_TWICE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "cleanup finished",
        "aligniform: interrupted; resume a training run with --resume",
    ]
