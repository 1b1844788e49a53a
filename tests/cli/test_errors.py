"""The error contract of the command line (issue 10, defects 6-8 outside training).

Every error a user can fix is one line on stderr, ``aligniform COMMAND: error: ...``, naming the option or
file and what to do, with exit code 2 and no traceback; a refused command leaves the folders it was given
byte-identical; results that were computed are printed before a failure to save them.
"""

import argparse
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from aligniform.cli import main
from aligniform.cli.errors import EXIT_USER_ERROR, describe_os_error, run_handler
from tests.support.cli import check_one_line, one_line_error, refused
from tests.support.files import snapshot
from tests.support.sphere import noisy_pairs

# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def pairs_npz(tmp_path: Path) -> Path:
    x, y = noisy_pairs(60, 2, 0.1, torch.Generator().manual_seed(0), torch.float32)
    path = tmp_path / "pairs.npz"
    np.savez(path, x=x.numpy(), y=y.numpy(), labels=np.arange(60) % 3)
    return path


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/full/disk/file")


# ----------------------------------------------------------------------------- operating-system errors, generically


@pytest.mark.parametrize(
    "error,expected",
    [
        (PermissionError(errno.EACCES, "Permission denied", "out/r.json"), "permission denied"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "out/r.json"), "is a folder, not a file"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "out/r.json"), "a part of the path is a file"),
        (OSError(errno.ENOSPC, "No space left on device", "out/r.json"), "no space left on the device"),
        (OSError(errno.EROFS, "Read-only file system", "out/r.json"), "read-only file system"),
        (OSError(errno.EDQUOT, "Disk quota exceeded", "out/r.json"), "disk quota exceeded"),
        (FileExistsError(errno.EEXIST, "File exists", "out/r.json"), "is a file, not a folder"),
    ],
)
def test_os_errors_are_one_line_naming_the_option_and_the_path(capsys, error, expected):
    def handler(args):
        raise error

    args = argparse.Namespace(
        command="eval", handler=handler, json=Path("out"), option_names={"json": "--json", "command": ""}
    )
    assert run_handler(args) == EXIT_USER_ERROR
    line = one_line_error(capsys, "eval", expected, "--json out (out/r.json)")
    assert line.count(";") >= 1  # and what to do about it


def test_os_error_without_a_matching_option_names_the_path_and_one_without_errno_keeps_its_message():
    error = PermissionError(errno.EACCES, "Permission denied", "/etc/x")
    assert describe_os_error(error, argparse.Namespace(out="elsewhere")).startswith("/etc/x: permission denied")
    assert describe_os_error(FileNotFoundError("checkpoint x.pt does not exist")) == "checkpoint x.pt does not exist"
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")).startswith("no space left")


def test_a_library_os_error_under_an_option_names_that_option(capsys, tmp_path, run, monkeypatch):
    import aligniform._io

    def refuse(source, target):  # as the rename of the atomic writer fails: it names the temporary file
        raise PermissionError(errno.EACCES, "Permission denied", str(source), None, str(target))

    monkeypatch.setattr(aligniform._io.os, "replace", refuse)
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == EXIT_USER_ERROR
    one_line_error(capsys, "report", f"-o/--output {tmp_path / 'r.html'}", "permission denied", "choose a location")


# ----------------------------------------------------------------------------- defect 6: outputs, refused up front


def test_report_into_a_folder_is_refused_before_any_work(capsys, tmp_path, run):
    refused(capsys, tmp_path, ["report", str(run), "-o", str(tmp_path)], "report", "-o/--output", "is a folder")


def test_report_under_a_file_is_refused(capsys, tmp_path, run):
    target = run / "results.json" / "report.html"
    refused(capsys, tmp_path, ["report", str(run), "-o", str(target)], "report", "which is a file, not a folder")


def test_report_api_checks_its_output_before_rendering(tmp_path, run, monkeypatch):
    import aligniform.report
    from aligniform.report import write_report

    monkeypatch.setattr(aligniform.report, "render_report", lambda *a, **k: pytest.fail("rendered before checking"))
    with pytest.raises(ValueError, match="is a folder, not a file"):
        write_report([run], tmp_path)


def test_study_out_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "results.txt").write_text("someone's file\n")
    argv = ["study", "theorem1", "--out", str(tmp_path / "results.txt"), "--set", "encoder=none"]
    refused(capsys, tmp_path, argv, "study", "--out", "is a file, not a folder")


def test_analyze_figures_into_a_file_is_refused_before_the_analysis(capsys, tmp_path, pairs_npz):
    (tmp_path / "plot.png").write_bytes(b"\x89PNG someone's picture")
    argv = ["analyze", "--npz", str(pairs_npz), "--figures", str(tmp_path / "plot.png")]
    refused(capsys, tmp_path, argv, "analyze", "--figures", "is a file, not a folder")
    argv[-1] = str(tmp_path / "plot.png" / "figures")
    refused(capsys, tmp_path, argv, "analyze", "--figures", "which is a file, not a folder")


def test_analyze_prints_the_analysis_before_failing_to_save_its_figures(capsys, tmp_path, pairs_npz, monkeypatch):
    import aligniform.analysis.figures

    monkeypatch.setattr(aligniform.analysis.figures, "analysis_figures", no_space)
    argv = ["analyze", "--npz", str(pairs_npz), "--figures", str(tmp_path / "figs")]
    assert main(argv) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert "uniformity (t=2)" in captured.out  # the analysis reached the terminal
    check_one_line(captured.err, "analyze", "the analysis was printed", "--figures", "no space left")
    assert main([*argv, "--json"]) == EXIT_USER_ERROR
    printed = json.loads(capsys.readouterr().out)
    assert printed["figures"][0].endswith("alignment_histogram.png") and "uniformity" in printed


def test_analyze_figures_into_a_missing_folder_creates_it(capsys, tmp_path, pairs_npz):
    assert main(["analyze", "--npz", str(pairs_npz), "--figures", str(tmp_path / "new" / "figs")]) == 0
    assert (tmp_path / "new" / "figs" / "hypersphere.png").is_file()


def test_empty_output_paths_are_refused_by_the_parser(capsys, pairs_npz):
    with pytest.raises(SystemExit) as stopped:
        main(["study", "theorem1", "--out", ""])
    assert stopped.value.code == EXIT_USER_ERROR
    assert "the path is empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["analyze", "--npz", str(pairs_npz), "--figures", " "])


# ----------------------------------------------------------------------------- defect 6: eval


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory) -> Path:
    """A one-epoch digits run (about 15 s), made once for the module."""
    from aligniform.config import TrainConfig
    from aligniform.train import run

    out = tmp_path_factory.mktemp("eval") / "run"
    run(
        TrainConfig(dataset="digits", epochs=1, batch_size=64, dim=8, out=str(out), progress=False, linear_probe="none")
    )
    return out / "checkpoint.pt"


def eval_argv(checkpoint: Path, *extra: str) -> list[str]:
    return ["eval", str(checkpoint), "--protocol", "knn", "--device", "cpu", *extra]


def test_eval_json_into_a_missing_folder_writes_it(capsys, tmp_path, digits_checkpoint):
    target = tmp_path / "missing" / "deeper" / "eval.json"
    assert main(eval_argv(digits_checkpoint, "--json", str(target))) == 0
    assert json.loads(target.read_text())["knn_acc"] > 0
    assert f"written to {target}" in capsys.readouterr().out


def test_eval_json_that_cannot_be_written_is_refused_before_evaluating(
    capsys, tmp_path, digits_checkpoint, monkeypatch
):
    import aligniform.train.restore

    monkeypatch.setattr(aligniform.train.restore, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "a_file").write_text("x")
    run = digits_checkpoint.parent
    before = snapshot(run)
    for target, message in [(tmp_path, "is a folder, not a file"), (tmp_path / "a_file" / "e.json", "is a file")]:
        refused(capsys, tmp_path, eval_argv(digits_checkpoint, "--json", str(target)), "eval", "--json", message)
    assert snapshot(run) == before


def test_eval_on_a_read_only_run_is_refused_before_evaluating(capsys, digits_checkpoint, monkeypatch):
    import aligniform.train.restore

    run = digits_checkpoint.parent
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == run else real_access(path, mode))
    monkeypatch.setattr(aligniform.train.restore, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    refused(capsys, run, eval_argv(digits_checkpoint), "eval", str(run), "read-only", "--json PATH")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_eval_on_a_truly_read_only_run_is_refused(capsys, digits_checkpoint):
    run = digits_checkpoint.parent
    mode = run.stat().st_mode
    run.chmod(0o555)
    try:
        refused(capsys, run, eval_argv(digits_checkpoint), "eval", "--json PATH")
    finally:
        run.chmod(mode)


def test_eval_prints_its_table_before_failing_to_save_it(capsys, tmp_path, digits_checkpoint, monkeypatch):
    import aligniform._io

    monkeypatch.setattr(aligniform._io, "write_json", no_space)
    before = snapshot(digits_checkpoint.parent)
    assert main(eval_argv(digits_checkpoint, "--json", str(tmp_path / "eval.json"))) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert "5-NN %" in captured.out and "checkpoint.pt" in captured.out  # the table reached the terminal
    check_one_line(captured.err, "eval", f"the results above were not saved to {tmp_path / 'eval.json'}", "no space")
    assert snapshot(digits_checkpoint.parent) == before


# ----------------------------------------------------------------------------- defect 7: late or missing validation


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_demo_refuses_a_non_positive_epoch_count(capsys, tmp_path, epochs):
    refused(capsys, tmp_path, ["demo", "--out", str(tmp_path / "demo"), "--epochs", epochs], "demo", "--epochs")


def test_demo_refuses_an_out_that_is_a_file_and_its_api_refuses_epochs_zero(capsys, tmp_path):
    from aligniform.demo import run_demo

    (tmp_path / "demo").write_text("x")
    refused(capsys, tmp_path, ["demo", "--out", str(tmp_path / "demo")], "demo", "--out", "is a file")
    with pytest.raises(ValueError, match="`epochs` must be a positive integer, got 0"):
        run_demo(tmp_path / "other", epochs=0)
    assert not (tmp_path / "other").exists()


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,fragments",
    [
        ("base: {dataset: [digits\n", ["is not valid YAML", "line"]),
        ("- dataset: digits\n", ["has a YAML list"]),
        ("base: [1, 2]\n", ["base of", "must be a mapping"]),
        ("grid: [seed, dim]\n", ["grid of", "must be a mapping"]),
        ("grid: {seed: 3}\n", ["grid option 'seed' must be a non-empty list"]),
        ("runs: {seed: 1}\n", ["section runs of", "must be a list"]),
        ("runs: [1]\n", ["runs entry 0 of", "must be a mapping"]),
        ("grids: {seed: [1, 2]}\n", ["has ['grids']"]),
        ("base: {out: elsewhere}\n", ["sets out", "remove out"]),
        ("grid: {out: [a, b]}\n", ["sets out"]),
        ("runs: [{out: a}]\n", ["sets out"]),
        ("grid: {seed: [1, 1]}\n", ["runs 0 and 1", "same options"]),
        ("base: {nosuch: 1}\n", ["run 0 of", "nosuch"]),
    ],
)
def test_malformed_sweep_grids_are_one_line_naming_the_file(capsys, tmp_path, text, fragments):
    grid = write_text(tmp_path / "grid.yaml", text)
    argv = ["sweep", str(grid), "--out", str(tmp_path / "sweep")]
    refused(capsys, tmp_path, argv, "sweep", str(grid), *fragments)


def test_sweep_refuses_a_bad_out_and_bad_workers(capsys, tmp_path):
    grid = write_text(tmp_path / "grid.yaml", "base: {dataset: digits}\n")
    (tmp_path / "taken").write_text("x")
    refused(capsys, tmp_path, ["sweep", str(grid), "--out", str(tmp_path / "taken")], "sweep", "--out", "is a file")
    refused(
        capsys, tmp_path, ["sweep", str(grid), "--out", str(tmp_path / "s"), "--workers", "0"], "sweep", "--workers"
    )


def test_a_failing_sweep_run_is_reported_per_run_and_the_sweep_exits_non_zero(capsys, tmp_path, monkeypatch):
    import subprocess

    import aligniform.sweep

    grid = write_text(tmp_path / "grid.yaml", yaml.safe_dump({"base": {"dataset": "digits"}, "grid": {"seed": [1, 2]}}))
    runs = aligniform.sweep.load_grid(grid)

    def fake_train(command, env, stdout, stderr):
        run = Path(command[command.index("--out") + 1]).name
        failing = run == runs[1].name
        stdout.write("aligniform train: error: batch_size 5000 is larger than the dataset\n" if failing else "")
        return subprocess.CompletedProcess(command, 2 if failing else 0)

    monkeypatch.setattr(aligniform.sweep.subprocess, "run", fake_train)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "s")]) == 1
    captured = capsys.readouterr()
    assert f"{runs[0].name}: done" in captured.out
    failed_line = next(line for line in captured.out.splitlines() if runs[1].name in line)
    assert "FAILED (exit 2)" in failed_line and "batch_size 5000 is larger" in failed_line
    check_one_line(captured.err, "sweep", "1 of 2 run(s) failed", runs[1].name, "train.log")
    assert (tmp_path / "s" / "sweep.csv").is_file()


def test_study_set_threads_negative_is_one_line_and_nothing_is_written(capsys, tmp_path):
    argv = ["study", "theorem1", "--out", str(tmp_path / "study"), "--set", "threads=-1"]
    refused(capsys, tmp_path, argv, "study", "--set threads must be 0")
    argv[-1] = "repeats=1"  # the options' own checks run before anything is written too
    refused(capsys, tmp_path, argv, "study", "--set repeats must be >= 2")
    argv[-1] = "steps=0"
    argv[1] = "latent-classes"
    refused(capsys, tmp_path, argv, "study", "--set steps must be a positive integer")


# ----------------------------------------------------------------------------- defect 8 at the command line


def test_analyze_string_labels_name_the_file_and_the_array(capsys, tmp_path):
    x = F.normalize(torch.randn(10, 4), dim=1).numpy()
    np.savez(tmp_path / "named.npz", x=x, y=x, labels=np.array(["cat", "dog"] * 5))
    argv = ["analyze", "--npz", str(tmp_path / "named.npz")]
    refused(capsys, tmp_path, argv, "analyze", "labels", str(tmp_path / "named.npz"), "integer class labels")


class _Touch:
    """An object whose unpickling would create a file: proof that nothing is unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_analyze_refuses_arrays_that_need_pickle_without_unpickling_them(capsys, tmp_path):
    marker = tmp_path / "code_ran"
    np.savez(tmp_path / "objects.npz", x=np.array([_Touch(marker)] * 4, dtype=object))
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "x.npy", np.array([_Touch(marker)] * 4, dtype=object))
    argv = ["analyze", "--npz", str(tmp_path / "objects.npz")]
    refused(capsys, tmp_path, argv, "analyze", "objects.npz", "array x", "does not unpickle")
    refused(capsys, tmp_path, ["analyze", "--npy-dir", str(folder)], "analyze", "x.npy", "does not unpickle")
    assert not marker.exists()


def test_analyze_max_pairs_must_be_positive(capsys, tmp_path, pairs_npz):
    refused(capsys, tmp_path, ["analyze", "--npz", str(pairs_npz), "--max-pairs", "0"], "analyze", "--max-pairs")


# ----------------------------------------------------------------------------- library field names, spelled as flags


def test_a_config_error_names_the_train_flag(capsys, tmp_path):
    refused(capsys, tmp_path, ["train", "--out", " "], "train", "--out is empty", "e.g. --out=runs/a")


def test_library_errors_spell_this_commands_options_and_keep_unknown_names(capsys, tmp_path):
    from aligniform.cli import build_parser
    from aligniform.data import load_dataset
    from aligniform.errors import OptionError

    args = build_parser().parse_args(["train", "--dataset", "cifar10"])
    args.handler = lambda args: load_dataset("cifar10", tmp_path / "nowhere")
    assert run_handler(args) == EXIT_USER_ERROR
    line = one_line_error(capsys, "train", "(the option --download)")
    assert "`" not in line

    def checkpoint_error(args):
        raise OptionError("`checkpoint` holds no `layer` named fc9; also see `nosuch`")

    args = build_parser().parse_args(["eval", "run/checkpoint.pt"])
    args.handler = checkpoint_error
    assert run_handler(args) == EXIT_USER_ERROR
    one_line_error(capsys, "eval", "checkpoint holds no --layer named fc9; also see `nosuch`")


def test_a_handler_can_spell_options_its_parser_does_not_have(capsys):
    from aligniform.cli import build_parser
    from aligniform.errors import OptionError

    def study_like(args):
        # As aligniform study does for its --set options, whose names depend on the study.
        args.handler_spellings = lambda name: f"--set {name}" if name in ("repeats", "out") else None
        raise OptionError("`repeats` must be >= 2; `out` is fine")

    args = build_parser().parse_args(["study", "theorem1"])
    args.handler = study_like
    assert run_handler(args) == EXIT_USER_ERROR
    one_line_error(capsys, "study", "--set repeats must be >= 2; --set out is fine")


def test_train_help_spells_the_options_its_texts_name(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "into --data-dir if missing" in text and "multiplies the lr by --lr-decay" in text
    assert "`" not in text


def test_an_os_error_with_its_own_message_spells_the_options_it_names(capsys):
    from aligniform.cli import build_parser

    def missing(args):
        raise FileNotFoundError("`json` elsewhere/eval.json: its folder was removed; give another `json`")

    args = build_parser().parse_args(["eval", "run/checkpoint.pt"])
    args.handler = missing
    assert run_handler(args) == EXIT_USER_ERROR
    one_line_error(capsys, "eval", "--json elsewhere/eval.json: its folder was removed; give another --json")
