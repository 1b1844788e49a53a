"""Tests of aligniform.analysis.format: the table `aligniform analyze` prints."""

from aligniform.analysis import EmbeddingSet, analyze_embeddings, format_analysis
from aligniform.analysis.format import format_results
from tests.analysis.toy import unit_pairs


def test_format_analysis_is_an_aligned_table_with_hints():
    x, y, labels = unit_pairs()
    text = format_analysis(analyze_embeddings(EmbeddingSet(x, y, labels, "toy")))
    lines = text.splitlines()
    assert lines[0] == "source: toy"
    header = next(line for line in lines if line.startswith("metric"))
    value_end, note_start = header.index("value") + len("value"), header.index("note")
    rows = [line for line in lines if line.startswith(("alignment", "uniformity", "tolerance", "mean-", "effective"))]
    assert len(rows) == 5
    for row in rows:  # values right-aligned in one column, notes starting in the next one
        assert row[value_end - 1] != " " and row[value_end:note_start] == "  " and row[note_start] != " "
    assert "lower is better" in text and "higher" in text
    assert "half of the labelled rows" in text  # the mean classifier says how it was scored


def test_format_results_table():
    text = format_results({"a": {"linear_acc": 0.9123, "uniformity": -3.5}, "b": {}})
    lines = text.splitlines()
    assert "linear %" in lines[0] and "91.23" in lines[2] and "-3.50" in lines[2] and "—" in lines[3]
