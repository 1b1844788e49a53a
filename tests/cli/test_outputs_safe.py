"""Issue 19: no output path can cost a user a file.

Each refused command exits 2 with one line naming the option and the path (no traceback), and leaves the folder
byte-identical: the SHA-256 and mode of every file, and where every link points, before and after.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from aligniform import _faults
from aligniform.cli import main
from aligniform.cli.errors import EXIT_USER_ERROR
from tests.support.cli import check_one_line, refused


@pytest.mark.parametrize("name", ["checkpoint.pt", "best.pt", "metrics.jsonl", "config.yaml", "results.json"])
def test_report_never_replaces_a_run_file(capsys, tmp_path, run, name):
    line = refused(capsys, tmp_path, ["report", run, "-o", run / name], "report", f"-o/--output {run / name}")
    assert f"would replace {name}, a file of the run in {run}" in line


def test_report_never_replaces_an_input_even_through_a_link(capsys, tmp_path, run):
    (run / "loss.png").write_bytes(b"\x89PNG figure the report embeds")
    refused(capsys, tmp_path, ["report", run, "-o", run / "loss.png"], "report", "a file this command reads")
    (tmp_path / "link.html").symlink_to(run / "results.json")
    refused(capsys, tmp_path, ["report", run, "-o", tmp_path / "link.html"], "report", "results.json")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.csv").write_text("run,tau\nrun,0.5\n")
    refused(capsys, tmp_path, ["report", sweep, "-o", sweep / "sweep.csv"], "report", "a file this command reads")


def test_report_replaces_its_own_previous_report(capsys, run):
    assert main(["report", str(run), "-o", str(run / "report.html")]) == 0
    assert main(["report", str(run), "-o", str(run / "report.html")]) == 0  # rerun: its output, not an input
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("name", ["checkpoint.pt", "metrics.jsonl", "best.pt"])
def test_eval_json_never_replaces_the_checkpoint_or_a_run_file(capsys, tmp_path, run, name):
    refused(capsys, tmp_path, ["eval", run / "checkpoint.pt", "--json", run / name], "eval", f"--json {run / name}")


def test_eval_json_never_replaces_its_checkpoint_through_a_hard_link(capsys, tmp_path, run):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(run / "checkpoint.pt", elsewhere / "copy.pt")
    refused(capsys, tmp_path, ["eval", elsewhere / "copy.pt", "--json", run / "checkpoint.pt"], "eval", "checkpoint.pt")
    os.link(elsewhere / "copy.pt", elsewhere / "also.json")
    refused(capsys, tmp_path, ["eval", elsewhere / "copy.pt", "--json", elsewhere / "also.json"], "eval", "reads")


def test_eval_names_a_folder_or_a_fifo_for_what_it_is(capsys, tmp_path, run):
    line = refused(capsys, tmp_path, ["eval", run], "eval", f"{run} is a folder", "give")
    assert str(run / "checkpoint.pt") in line and "does not exist" not in line
    os.mkfifo(tmp_path / "fifo")
    refused(capsys, tmp_path, ["eval", tmp_path / "fifo"], "eval", "is not a regular file (a FIFO")


def test_analyze_names_a_run_folder_a_plain_folder_or_a_fifo(capsys, tmp_path, run):
    line = refused(capsys, tmp_path, ["analyze", run], "analyze", f"PATH {run} is a run folder", "checkpoint.pt")
    assert "does not exist" not in line
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(capsys, tmp_path, ["analyze", empty], "analyze", f"PATH {empty} is a folder without x.npy")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(SystemExit) as exited:  # refused by the argument's type, as argparse refuses: exit 2
        main(["analyze", str(tmp_path / "fifo")])
    error = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and error.count("\n") == 0 and "is not a regular file" in error


def test_analyze_suggests_the_flag_not_the_keyword(capsys, tmp_path):
    np.savez(tmp_path / "far.npz", x=3 * np.eye(4), y=3 * np.eye(4))
    line = refused(capsys, tmp_path, ["analyze", tmp_path / "far.npz"], "analyze", "--normalize")
    assert "normalize=True" not in line


def test_analyze_reads_array_files_safely(capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.eye(3))
    os.rename(tmp_path / "x.npy", tmp_path / "renamed.npz")
    refused(capsys, tmp_path, ["analyze", tmp_path / "renamed.npz"], "analyze", "single .npy array, not an .npz")
    header = _npy_header((10**11, 16))
    import zipfile

    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x.npy", header + b"\0" * 64)
    refused(capsys, tmp_path, ["analyze", tmp_path / "huge.npz"], "analyze", "claims shape (100000000000, 16)")
    folder = tmp_path / "arrays"
    folder.mkdir()
    (folder / "x.npy").write_bytes(header + b"\0" * 64)
    refused(capsys, tmp_path, ["analyze", "--npy-dir", folder], "analyze", "corrupt or truncated")


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_analyze_figures_never_replace_an_input(capsys, tmp_path, pairs):
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "alignment_histogram.png").symlink_to(pairs)
    refused(
        capsys, tmp_path, ["analyze", pairs, "--figures", figures], "analyze", "--figures", "a file this command reads"
    )


def test_a_full_disk_leaves_the_old_report_whole_and_names_the_file(capsys, tmp_path, run, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("the previous report\n")
    _faults.reset()
    monkeypatch.setenv(_faults.FAULT_ENV, "report.write:enospc")
    line = refused(capsys, tmp_path, ["report", run, "-o", out], "report", f"-o/--output {out}", "no space left")
    assert ".tmp" not in line
    _faults.reset()
    # A real write error names no file: the writer names the file it was writing, never its temporary file.
    monkeypatch.delenv(_faults.FAULT_ENV)
    monkeypatch.setattr("aligniform._io.os.fsync", _no_space)
    line = refused(capsys, tmp_path, ["report", run, "-o", out], "report", f"-o/--output {out}", "no space left")
    assert ".tmp" not in line


def _no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_no_empty_figure(capsys, tmp_path, pairs, monkeypatch):
    figures = tmp_path / "figures"
    _faults.reset()
    monkeypatch.setenv(_faults.FAULT_ENV, "alignment_histogram.write:enospc")
    assert main(["analyze", str(pairs), "--figures", str(figures)]) == EXIT_USER_ERROR
    line = check_one_line(capsys.readouterr().err, "analyze", "alignment_histogram.png", "no space left")
    assert ".tmp" not in line
    assert sorted(path.name for path in figures.iterdir()) == []  # nothing half-written, nothing empty
    _faults.reset()


# ----------------------------------------------------------------------------- the check itself, from Python


def test_the_protected_names_are_the_run_folders_own():
    from aligniform._outputs import RUN_FOLDER_FILES
    from aligniform.train import run_folder

    # Defined once in a foundation module so every writer can import it; it must follow train/'s list.
    assert set(RUN_FOLDER_FILES) == {*run_folder.RUN_FILES, run_folder.LOCK_FILE}


def test_check_output_path_protects_run_files_and_inputs(tmp_path, run):
    from aligniform._outputs import check_output_path, is_run_folder_file
    from aligniform.errors import OptionError

    assert is_run_folder_file(run / "history.yaml") and not is_run_folder_file(run / "report.html")
    other = tmp_path / "project"
    other.mkdir()
    assert check_output_path(other / "config.yaml", "`out`") == other / "config.yaml"  # no run there
    with pytest.raises(OptionError, match=r"^`out` .*config\.yaml would replace config\.yaml, a file of the run"):
        check_output_path(run / "config.yaml", "`out`")
    (other / "alias.png").symlink_to(run / "best.pt")
    with pytest.raises(OptionError, match="would replace best.pt"):
        check_output_path(other, "`figures`", folder=True, files=["alias.png"])
    data = other / "data.npz"
    data.write_bytes(b"arrays")
    os.link(data, other / "same.json")
    with pytest.raises(OptionError, match=r"same\.json is .*data\.npz, a file this command reads"):
        check_output_path(other / "same.json", "`json`", inputs=[data])
    assert check_output_path(other / "new.json", "`json`", inputs=[data]) == other / "new.json"


# ----------------------------------------------------------------------------- study, sweep and demo outputs


def _grid(path: Path) -> Path:
    path.write_text("base: {dataset: digits, epochs: 1, dim: 8, linear_probe: none}\ngrid: {seed: [0, 1]}\n")
    return path


def test_sweep_never_writes_its_summary_over_its_grid_or_into_a_run(capsys, tmp_path, run):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    grid = _grid(sweep / "sweep.csv")  # a grid file named as the summary the sweep writes beside its runs
    refused(capsys, tmp_path, ["sweep", grid, "--out", sweep], "sweep", f"--out {sweep}", "a file this command reads")
    grid = _grid(tmp_path / "grid.yaml")
    refused(capsys, tmp_path, ["sweep", grid, "--out", run / "tensorboard"], "sweep", "a file of the run in")
    (run / "tensorboard").mkdir()
    refused(capsys, tmp_path, ["sweep", grid, "--out", run / "tensorboard"], "sweep", "would replace tensorboard")


def test_sweep_never_retrains_a_run_it_did_not_make(capsys, tmp_path, run):
    from aligniform.cli.sweep import check_sweep_folder
    from aligniform.sweep import load_grid

    grid = _grid(tmp_path / "grid.yaml")
    sweep = tmp_path / "sweep"
    first = load_grid(grid)[0]
    sweep.mkdir()
    run.rename(sweep / first.name)  # the user's own run, where a sweep run goes
    line = refused(
        capsys, tmp_path, ["sweep", grid, "--out", sweep, "--emit-commands"], "sweep", "holds a run that this sweep"
    )
    assert str(sweep / first.name) in line
    # The sweep's own run (its config is the grid's: a run that failed or was stopped) is trained again.
    first.config(sweep).to_yaml(sweep / first.name / "config.yaml")
    assert check_sweep_folder(grid, sweep, None) == sweep


def test_study_never_writes_over_its_inputs_or_a_run(capsys, tmp_path, run):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "sweep.csv").write_text("run,seed\n")
    argv = [
        "study",
        "correlation",
        "--out",
        seeds,
        "--set",
        f"seeds={seeds}",
        "--set",
        f"grid={_grid(tmp_path / 'g.yaml')}",
    ]
    refused(capsys, tmp_path, argv, "study", f"--out {seeds}", "a file this command reads")
    encoder = tmp_path / "t1" / "theorem1.json"
    encoder.parent.mkdir()
    encoder.write_bytes(b"a checkpoint, whatever its name")
    argv = ["study", "theorem1", "--out", encoder.parent, "--set", f"encoder={encoder}"]
    # refused before --out is looked at: the encoder is read first (it is no checkpoint), naming the file
    refused(capsys, tmp_path, argv, "study", "theorem1.json")
    refused(capsys, tmp_path, ["study", "latent-classes", "--out", run / "checkpoint.pt"], "study", "is a file")
    (run / "tensorboard").mkdir()
    refused(capsys, tmp_path, ["study", "latent-classes", "--out", run / "tensorboard"], "study", "a file of the run")


def test_demo_never_writes_into_a_run_folder_or_over_a_run_it_did_not_make(capsys, tmp_path, run):
    refused(capsys, tmp_path, ["demo", "--out", run, "--epochs", "1"], "demo", f"--out {run}", "results.json")
    demo = tmp_path / "demo"
    demo.mkdir()
    run.rename(demo / "contrastive")  # the user's own run where the demo's contrastive run goes
    line = refused(capsys, tmp_path, ["demo", "--out", demo, "--epochs", "1"], "demo", "--out", "not the demo's")
    assert str(demo / "contrastive") in line


def test_demo_may_replace_its_own_runs_and_summary(tmp_path):
    from aligniform._io import write_json
    from aligniform.demo import DEMO_OBJECTIVES, check_demo_folder, demo_config

    demo = tmp_path / "demo"
    for name, objective in DEMO_OBJECTIVES.items():
        (demo / name).mkdir(parents=True)
        demo_config(name, objective, demo, 30, "cpu").to_yaml(demo / name / "config.yaml")
        (demo / name / "results.json").write_text("{}")
    write_json(demo / "results.json", {"results": {}, "epochs": 30, "objectives": DEMO_OBJECTIVES})
    assert check_demo_folder(demo, epochs=2, device="auto") == demo  # other epochs and device: still its own runs
