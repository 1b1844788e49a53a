"""Defects the fault campaign (tools/fault_campaign.py) found in the commands, one regression test each.

Each refused command exits 2 with one line naming the option and the path, and leaves the folder byte-identical.
"""

from __future__ import annotations

import os
from pathlib import Path

from aligniform.cli import main
from tests.support.cli import refused as refused_anywhere
from tests.support.files import snapshot


def refused(capsys, root: Path, argv: list, command: str, *fragments: str) -> str:
    """The refusal of every case here: by the command or already by its argument parser."""
    return refused_anywhere(capsys, root, argv, command, *fragments, parser=True)


def test_an_output_through_a_dangling_link_is_refused_and_the_link_kept(capsys, tmp_path, run):
    # It used to replace the link by a regular file (eval --json, report -o) or fail after the work (--figures).
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    line = refused(capsys, tmp_path, ["report", run, "-o", tmp_path / "dangling"], "report", "-o/--output")
    assert "symbolic link" in line and "does not exist" in line
    refused(capsys, tmp_path, ["eval", run / "checkpoint.pt", "--json", tmp_path / "dangling"], "eval", "--json")
    refused(
        capsys,
        tmp_path,
        ["analyze", "--npz", tmp_path / "pairs.npz", "--figures", tmp_path / "dangling"],
        "analyze",
        "--figures",
        "symbolic link",
    )


def test_an_output_through_a_link_writes_what_it_points_to(capsys, tmp_path, run):
    target = tmp_path / "reports" / "latest.html"
    target.parent.mkdir()
    target.write_text("old report")
    (tmp_path / "report.html").symlink_to(target)
    assert main(["report", str(run), "-o", str(tmp_path / "report.html")]) == 0
    assert (tmp_path / "report.html").is_symlink()
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_compare_names_a_resample_count_or_seed_numpy_cannot_take(capsys, tmp_path, pairs):
    base = ["compare", pairs, pairs, "--out", tmp_path / "out"]
    refused(capsys, tmp_path, [*base, "--resamples", "99999999999999999999"], "compare", "--resamples", "at most")
    refused(capsys, tmp_path, [*base, "--seed", "-1"], "compare", "--seed must be a non-negative integer")


def test_report_refuses_an_empty_path(capsys, tmp_path, run):
    refused(capsys, tmp_path, ["report", ""], "report", "the path is empty")
    refused(capsys, tmp_path, ["report", run, "-o", ""], "report", "the path is empty")


def test_a_fifo_or_a_folder_given_as_a_file_is_named_for_what_it_is(capsys, tmp_path, pairs):
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    special = "is not a regular file or folder (a FIFO"
    refused(capsys, tmp_path, ["analyze", "--npz", fifo], "analyze", "--npz", special)
    refused(capsys, tmp_path, ["compare", pairs, fifo, "--out", tmp_path / "o"], "compare", f"INPUT {fifo}", special)
    refused(capsys, tmp_path, ["compare", pairs, "--pairs", fifo, "--out", tmp_path / "o"], "compare", special)
    refused(capsys, tmp_path, ["compare", pairs, "--pairs", folder, "--out", tmp_path / "o"], "compare", "is a folder")
    refused(capsys, tmp_path, ["sweep", fifo, "--out", tmp_path / "o"], "sweep", special)
    refused(capsys, tmp_path, ["train", "--config", fifo, "--out", tmp_path / "o"], "train", "--config", special)
    assert "o" not in snapshot(tmp_path)


def test_pairs_without_a_sentence_model_and_a_file_as_data_dir_are_refused(capsys, tmp_path, pairs):
    # Both were ignored without a word.
    (tmp_path / "notes.tsv").write_text("a\tb\n")
    refused(capsys, tmp_path, ["analyze", pairs, "--pairs", tmp_path / "notes.tsv"], "analyze", "--sentence-model")
    argv = ["eval", tmp_path / "run.pt", "--data-dir", pairs]
    refused(capsys, tmp_path, argv, "eval", "--data-dir", "is not a folder")
    argv = ["train", "--data-dir", pairs, "--out", tmp_path / "o"]
    refused(capsys, tmp_path, argv, "train", "--data-dir", "is not a folder")


def test_a_name_too_long_is_one_line(capsys, tmp_path, pairs):
    refused(capsys, tmp_path, ["compare", pairs, "--pairs", tmp_path / ("x" * 300), "--out", tmp_path / "o"], "compare")


def test_a_study_input_file_is_checked_before_out_is_created(capsys, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for value, fragment in (("", "is empty"), (tmp_path / "folder", "is a folder"), (tmp_path / "fifo", "FIFO")):
        argv = ["study", "correlation", "--set", f"grid={value}", "--out", out]
        refused(capsys, tmp_path, argv, "study", "--set grid", fragment)
    (tmp_path / "damaged.pt").write_bytes(b"not a checkpoint")
    argv = ["study", "theorem1", "--set", f"encoder={tmp_path / 'damaged.pt'}", "--out", out]
    refused(capsys, tmp_path, argv, "study", "damaged.pt", "checkpoint")
    assert not out.exists()
