"""The sweep figures' additions for the correlation study: collapsed encoders marked, accuracy against each metric."""

import math

import pytest

from aligniform import plots, stats


def rows(collapsed=(False, False, True, False)):
    values = [(0.2, -3.5, 0.95), (0.4, -3.2, 0.93), (0.05, -0.1, 0.30), (0.6, -2.9, 0.90)]
    return [
        {"alignment": str(a), "uniformity": str(u), "knn_acc": str(acc), "collapsed": str(flag)}  # CSV text
        for (a, u, acc), flag in zip(values, collapsed)
    ]


def test_sweep_scatter_rings_collapsed_encoders():
    figure = plots.plot_sweep_scatter(rows(), accuracy_key="knn_acc", collapsed_key="collapsed")
    axes = figure.axes[0]
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["collapsed (1)"]
    ring = axes.collections[-1]
    assert ring.get_offsets().tolist() == [[-0.1, 0.05]]  # (uniformity, alignment) of the collapsed one
    # without the key nothing changes: no legend, one scatter
    plain = plots.plot_sweep_scatter(rows(), accuracy_key="knn_acc")
    assert plain.axes[0].get_legend() is None and len(plain.axes[0].collections) == 1


def test_collapsed_flags_accept_booleans_numbers_and_csv_text():
    records = rows()
    records[0]["collapsed"], records[1]["collapsed"], records[3]["collapsed"] = True, 1.0, ""
    figure = plots.plot_sweep_scatter(records, accuracy_key="knn_acc", collapsed_key="collapsed")
    assert figure.axes[0].get_legend().get_texts()[0].get_text() == "collapsed (3)"


def test_metric_scatter_titles_carry_rho_and_its_interval(tmp_path):
    records = rows()
    records.append({"alignment": "0.3", "knn_acc": "0.94", "collapsed": "False"})  # no uniformity: alignment only
    interval = (-0.9, -0.1)
    figure = plots.plot_metric_scatter(
        records, "knn_acc", tmp_path / "scatter", intervals={"alignment": interval}, collapsed_key="collapsed"
    )
    left, right = figure.axes
    alignment = [float(r["alignment"]) for r in records]
    accuracy = [float(r["knn_acc"]) for r in records]
    assert left.get_title() == f"Spearman ρ = {stats.spearman(alignment, accuracy):.2f}, 95 % CI [-0.90, -0.10] (n = 5)"
    assert right.get_title().endswith("(n = 4)") and "CI" not in right.get_title()
    assert left.get_xlabel().startswith("alignment") and left.get_ylabel() == "knn_acc"
    assert (tmp_path / "scatter.png").is_file() and (tmp_path / "scatter.svg").is_file()
    # an interval that is NaN (too few encoders) is left out of the title
    nan = plots.plot_metric_scatter(records, "knn_acc", intervals={"alignment": (math.nan, math.nan)})
    assert "CI" not in nan.axes[0].get_title()


def test_metric_scatter_needs_some_values():
    with pytest.raises(ValueError, match="no record has numeric values"):
        plots.plot_metric_scatter([{"alignment": 0.1}], "knn_acc")
