"""Strict, atomic JSON writing and JSON-lines reading (aligniform._io)."""

import json
import math
import stat

import numpy as np
import pytest

from aligniform._io import json_line, read_jsonl, write_atomic, write_json


def test_write_json_is_strict_json(tmp_path):
    values = {"nan": math.nan, "inf": -math.inf, "numpy": np.float32(0.5), "rows": ({"n": np.int64(3)},), 1: "key"}
    path = write_json(tmp_path / "new" / "results.json", values)
    assert path == tmp_path / "new" / "results.json"
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    assert json.loads(text) == {"nan": None, "inf": None, "numpy": 0.5, "rows": [{"n": 3}], "1": "key"}


def test_write_json_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_json_keeps_the_old_file_when_values_cannot_be_written(tmp_path):
    path = write_json(tmp_path / "results.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_read_jsonl_skips_blank_lines_and_names_bad_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n\n{"epoch": 2, "loss": NaN}\n')
    records = read_jsonl(path)
    assert records[0] == {"epoch": 1} and math.isnan(records[1]["loss"])
    path.write_text('{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2: expected a JSON object"):
        read_jsonl(path)
    path.write_text('{"epoch": 1}\n{"epoch": \n')
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        read_jsonl(path)


def test_json_line_writes_one_strict_line_per_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json_line({"epoch": 1, "loss": math.nan}) + json_line({"epoch": 2, "loss": np.float64(0.5)}))
    assert path.read_text() == '{"epoch": 1, "loss": null}\n{"epoch": 2, "loss": 0.5}\n'
    assert read_jsonl(path) == [{"epoch": 1, "loss": None}, {"epoch": 2, "loss": 0.5}]


def test_write_atomic_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, lambda stream: stream.write(b"new"))
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o640
