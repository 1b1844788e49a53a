"""The alignment–uniformity trajectory: files written, points in training order, runs without the keys handled."""

import json

import numpy as np
import pytest

from aligniform.plots import plot_trajectory, trajectory_points

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def epoch_records(epochs, shift=0.0):
    """metrics.jsonl lines as training writes them (held-out metrics next to the training loss)."""
    return [
        {
            "epoch": epoch,
            "loss": 1.0 / epoch,
            "val_alignment": 0.3 + 0.05 * epoch + shift,
            "val_uniformity": -1.0 - 0.4 * epoch - shift,
            "knn_acc": 0.5,
        }
        for epoch in range(1, epochs + 1)
    ]


def write_run(folder, records):
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return folder


def path_line(figure, label):
    (line,) = [line for line in figure.axes[0].lines if line.get_label() == label]
    return line.get_xdata().tolist(), line.get_ydata().tolist()


def test_run_folder_figure_is_written_with_points_in_epoch_order(tmp_path):
    records = epoch_records(5)
    shuffled = [records[i] for i in (3, 0, 4, 2, 1)]  # a log written out of order is still drawn in order
    run = write_run(tmp_path / "run", shuffled)
    figure = plot_trajectory(run, out=tmp_path / "figs" / "trajectory.png")
    for suffix in (".png", ".svg"):
        assert (tmp_path / "figs" / f"trajectory{suffix}").stat().st_size > 0
    assert (tmp_path / "figs" / "trajectory.png").read_bytes().startswith(PNG_MAGIC)
    x, y = path_line(figure, "_path")
    assert x == [record["val_uniformity"] for record in records]
    assert y == [record["val_alignment"] for record in records]
    axes, colorbar = figure.axes
    assert axes.get_xlabel().startswith("uniformity") and axes.get_ylabel().startswith("alignment")
    assert colorbar.get_ylabel() == "epoch"
    texts = [text.get_text() for text in axes.texts]
    assert texts == ["start", "end"]


def test_callback_records_with_other_keys_and_steps(tmp_path):
    # A per-step log as a Trainer callback writes it: loss lines in between, a prefix on the metric names.
    records = []
    for step in (30, 10, 20):
        records.append({"step": step, "loss": 0.1})
        records.append({"step": step, "epoch": step / 10, "eval_alignment": step / 100, "eval_uniformity": -step})
    path = trajectory_points(records)
    assert path.keys == ("eval_alignment", "eval_uniformity")
    assert path.progress_key == "step" and path.progress.tolist() == [10, 20, 30]
    assert path.uniformity.tolist() == [-10, -20, -30] and path.alignment.tolist() == [0.1, 0.2, 0.3]
    plain = [{"alignment": 0.5, "uniformity": -1.0}, {"alignment": 0.4, "uniformity": -2.0}]
    path = trajectory_points(plain)
    assert path.progress_key == "record" and path.alignment.tolist() == [0.5, 0.4]
    explicit = trajectory_points(records, alignment_key="eval_alignment", uniformity_key="eval_uniformity")
    assert explicit.progress.tolist() == [10, 20, 30]
    with pytest.raises(ValueError, match="both"):
        trajectory_points(records, alignment_key="eval_alignment")


def test_several_runs_share_one_plot_and_runs_without_the_keys_are_left_out(tmp_path):
    first = write_run(tmp_path / "a" / "run0", epoch_records(4))
    second = write_run(tmp_path / "b" / "run0", epoch_records(3, shift=0.2))
    no_validation = write_run(tmp_path / "plain", [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}])
    figure = plot_trajectory([first, second / "metrics.jsonl", no_validation])
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["run0", "run0 (2)"]
    assert len(figure.axes) == 1  # no colour bar: runs are told apart by colour
    assert path_line(figure, "run0 (2)")[1] == [record["val_alignment"] for record in epoch_records(3, shift=0.2)]

    mapping = plot_trajectory({"mine": epoch_records(2), "callback": [{"alignment": 0.1, "uniformity": -3.0}]})
    assert path_line(mapping, "callback") == ([-3.0], [0.1])
    assert path_line(mapping, "mine")[0] == [-1.4, -1.8]


def test_missing_values_are_skipped_and_nothing_to_draw_raises(tmp_path):
    records = epoch_records(3)
    records[1]["val_uniformity"] = None  # NaN is written to metrics.jsonl as null
    x, _ = path_line(plot_trajectory(records), "_path")
    assert x == [records[0]["val_uniformity"], records[2]["val_uniformity"]]
    assert trajectory_points([{"epoch": 1, "loss": 1.0}]) is None
    with pytest.raises(ValueError, match="no record holds both"):
        plot_trajectory([{"epoch": 1, "loss": 1.0}])
    with pytest.raises(ValueError, match="no record holds both"):
        plot_trajectory({"a": [{"loss": 1.0}], "b": []})
    with pytest.raises(ValueError, match="list of dicts"):
        plot_trajectory(3.5)
    with pytest.raises(ValueError, match="run names"):
        plot_trajectory({"a": 3})


def test_a_single_point_and_a_long_run_draw(tmp_path):
    figure = plot_trajectory([{"alignment": 0.2, "uniformity": -1.0}])
    assert [text.get_text() for text in figure.axes[0].texts] == ["start"]
    rng = np.random.default_rng(0)
    long_run = [{"step": s, "alignment": a, "uniformity": u} for s, (a, u) in enumerate(rng.random((400, 2)))]
    plot_trajectory(long_run, out=tmp_path / "long")
    assert (tmp_path / "long.png").is_file()


@pytest.mark.parametrize(
    "points",
    [
        [(0.50, -1.00), (0.90, -2.00), (0.5001, -1.0001)],  # loops back: the end next to the start
        [(0.50, -1.00), (0.5002, -1.0001)],  # a short run: two close points
        [(0.50, -1.00), (0.40, -3.00), (0.30, -1.00), (0.49, -1.01)],  # ends just below-left of the start
    ],
)
def test_start_and_end_labels_never_overlap(points):
    records = [{"epoch": e, "alignment": a, "uniformity": u} for e, (a, u) in enumerate(points, start=1)]
    figure = plot_trajectory(records)
    renderer = figure.canvas.get_renderer()
    labels = {text.get_text(): text.get_window_extent(renderer) for text in figure.axes[0].texts}
    assert set(labels) == {"start", "end"}
    assert not labels["start"].overlaps(labels["end"])
