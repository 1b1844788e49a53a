"""Figures: saved files, axes, labels, the numbers drawn, input validation."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid
from scipy.stats import spearmanr, vonmises

from aligniform import plots
from tests.support.sphere import positive_pairs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def circle_points(n=120, classes=3, seed=0):
    """n unit vectors in R², clustered by class around evenly spaced angles."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    theta = 2 * np.pi * labels / classes + rng.vonmises(0.0, 10.0, n)
    return np.stack([np.cos(theta), np.sin(theta)], axis=1), labels


def assert_saved(stem):
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 5000
    assert "<svg" in svg.read_text()


def legend_texts(axes):
    return [text.get_text() for text in axes.get_legend().get_texts()]


# --------------------------------------------------------------------------- vMF KDE


@pytest.mark.parametrize("kappa", [1.0, 10.0, 100.0, 1000.0])
def test_vmf_kde_integrates_to_one_over_the_circle(kappa):
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, 50)
    grid, density = plots.vmf_kde(angles, grid=np.linspace(-np.pi, np.pi, 20001), kappa=kappa)
    assert trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
    assert np.all(density >= 0)


def test_vmf_kde_of_one_angle_is_the_von_mises_density():
    grid, density = plots.vmf_kde([0.7], kappa=25.0)
    np.testing.assert_allclose(density, vonmises.pdf(grid, 25.0, loc=0.7), rtol=1e-10)


def test_vmf_kde_is_finite_for_huge_kappa():
    # exp(κ) and I₀(κ) both overflow float64 at κ = 1e5; the scaled form must not.
    _, density = plots.vmf_kde([0.0, 1.0], kappa=1e5)
    assert np.all(np.isfinite(density)) and density.max() > 0


@pytest.mark.parametrize("kappa", [0.0, -1.0, math.inf, math.nan])
def test_vmf_kde_rejects_bad_kappa(kappa):
    with pytest.raises(ValueError, match="kappa"):
        plots.vmf_kde([0.0], kappa=kappa)


def test_vmf_kde_rejects_empty_or_nan_angles():
    with pytest.raises(ValueError, match="at least one"):
        plots.vmf_kde([])
    with pytest.raises(ValueError, match="finite"):
        plots.vmf_kde([0.0, math.nan])


# --------------------------------------------------------------------------- hypersphere


def test_hypersphere_saves_png_and_svg_with_one_panel_per_class(tmp_path):
    z, labels = circle_points()
    figure = plots.plot_hypersphere(z, labels, class_names=["cat", "dog", "ship"], out=tmp_path / "new" / "sphere")
    assert_saved(tmp_path / "new" / "sphere")
    assert len(figure.axes) == 2 * (1 + 3)  # a density view and an angle view per panel
    titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
    assert titles == ["all classes (n=120)", "cat (n=40)", "dog (n=40)", "ship (n=40)"]
    angle_axes = figure.axes[1]
    assert "atan2" in angle_axes.get_xlabel()
    assert angle_axes.get_xlim() == pytest.approx((-np.pi, np.pi))
    density_axes = figure.axes[0]
    assert density_axes.get_xlabel() == "$z_1$" and len(density_axes.images) == 1
    assert any(type(patch).__name__ == "Circle" for patch in density_axes.patches)


def test_hypersphere_angle_curve_is_the_vmf_kde():
    z, _ = circle_points(60, classes=1)
    figure = plots.plot_hypersphere(z, kappa=50.0)
    assert len(figure.axes) == 2
    line = figure.axes[1].lines[0]
    grid, density = plots.vmf_kde(np.arctan2(z[:, 1], z[:, 0]), kappa=50.0)
    np.testing.assert_allclose(line.get_ydata(), density)


def test_hypersphere_accepts_tensors_wraps_panels_and_maps_names():
    z, labels = circle_points(90, classes=3)
    figure = plots.plot_hypersphere(torch.from_numpy(z).float(), torch.from_numpy(labels), {0: "zero"}, max_columns=2)
    assert len(figure.axes) == 8
    titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
    assert titles[1].startswith("zero") and titles[2].startswith("class 1")


def test_hypersphere_survives_collapsed_features():
    # A collapsed encoder puts every point at one spot: gaussian_kde's covariance is singular.
    z = np.tile([[1.0, 0.0]], (50, 1))
    labels = np.r_[np.zeros(49, int), 1]  # class 1 has a single point
    figure = plots.plot_hypersphere(z, labels)
    assert len(figure.axes) == 6
    assert np.isfinite(figure.axes[0].images[0].get_array()).all()


def test_hypersphere_rejects_features_that_are_not_2d():
    with pytest.raises(ValueError, match=r"\(N, 2\).*`dim` 2"):
        plots.plot_hypersphere(np.ones((10, 3)) / np.sqrt(3))
    with pytest.raises(ValueError, match="`dim` 2"):
        plots.plot_hypersphere(np.ones(10))


def test_hypersphere_requires_unit_norm_unless_asked_to_normalise():
    z, _ = circle_points(30)
    with pytest.raises(ValueError, match="normalize=True"):
        plots.plot_hypersphere(3 * z)
    assert len(plots.plot_hypersphere(3 * z, normalize=True).axes) == 2


def test_hypersphere_rejects_bad_labels_and_names():
    z, labels = circle_points(30)
    with pytest.raises(ValueError, match="one entry per feature row"):
        plots.plot_hypersphere(z, labels[:-1])
    with pytest.raises(ValueError, match="class_names has 2 names"):
        plots.plot_hypersphere(z, labels, class_names=["a", "b"])
    with pytest.raises(ValueError, match="finite"):
        plots.plot_hypersphere(np.full((3, 2), np.nan))


# --------------------------------------------------------------------------- alignment histogram


def test_alignment_histogram_marks_the_mean_distance(tmp_path):
    x, y = positive_pairs(500, 16, noise=0.4)
    figure = plots.plot_alignment_histogram(x, y, out=tmp_path / "align.png")
    assert_saved(tmp_path / "align")
    assert not (tmp_path / "align.png.png").exists()
    # Independent: on the unit sphere ||x - y|| = sqrt(2 - 2 xᵀy).
    expected = float(np.sqrt(np.clip(2 - 2 * (x.numpy() * y.numpy()).sum(1), 0, None)).mean())
    (axes,) = figure.axes
    mean_line = axes.lines[0]
    assert mean_line.get_xdata() == pytest.approx([expected, expected], rel=1e-9)
    assert f"mean = {expected:.3f}" in legend_texts(axes)[0]
    assert "distance" in axes.get_xlabel() and axes.get_ylabel() == "number of pairs"
    assert sum(patch.get_height() for patch in axes.patches) == 500


def test_alignment_histogram_rejects_mismatched_pairs():
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_alignment_histogram(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        plots.plot_alignment_histogram(np.zeros(4), np.zeros(4))


# --------------------------------------------------------------------------- sweep scatter


def sweep_records(n=25, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        alignment, uniformity = rng.uniform(0.2, 1.4), rng.uniform(-3.9, -1.0)
        accuracy = 0.9 - 0.2 * alignment - 0.05 * (uniformity + 3.9) + rng.normal(0, 0.03)
        # CSV rows: every value is a string.
        records.append({"alignment": f"{alignment}", "uniformity": f"{uniformity}", "linear_acc": f"{accuracy}"})
    return records


def test_sweep_scatter_shows_points_colours_and_spearman(tmp_path):
    records = sweep_records()
    skipped = [{"alignment": "", "uniformity": "-2", "linear_acc": "0.5"}, {"uniformity": "-2", "linear_acc": "0.4"}]
    figure = plots.plot_sweep_scatter(records + skipped, out=tmp_path / "sweep")
    assert_saved(tmp_path / "sweep")
    axes, colorbar_axes = figure.axes
    assert "uniformity" in axes.get_xlabel() and "alignment" in axes.get_ylabel()
    assert colorbar_axes.get_ylabel() == "linear_acc"
    offsets = axes.collections[0].get_offsets()
    assert len(offsets) == len(records)
    np.testing.assert_allclose(offsets[:, 0], [float(r["uniformity"]) for r in records])
    accuracy = [float(r["linear_acc"]) for r in records]
    rho_align = spearmanr(accuracy, [float(r["alignment"]) for r in records]).statistic
    rho_unif = spearmanr(accuracy, [float(r["uniformity"]) for r in records]).statistic
    (text,) = [t.get_text() for t in axes.texts]
    assert "Spearman" in text
    assert f"alignment) = {rho_align:.2f}" in text and f"uniformity) = {rho_unif:.2f}" in text


def test_sweep_correlations_match_scipy_and_handle_tiny_sweeps():
    records = sweep_records(12)
    correlations = plots.sweep_correlations(records)
    accuracy = [float(r["linear_acc"]) for r in records]
    assert correlations["n"] == 12
    assert correlations["alignment"] == pytest.approx(spearmanr(accuracy, [float(r["alignment"]) for r in records])[0])
    tiny = plots.sweep_correlations(records[:2])
    assert math.isnan(tiny["alignment"]) and tiny["n"] == 2
    figure = plots.plot_sweep_scatter(records[:2], accuracy_key="linear_acc")
    assert "n/a" in figure.axes[0].texts[0].get_text()


def test_sweep_scatter_needs_complete_rows():
    with pytest.raises(ValueError, match="no record has numeric values"):
        plots.plot_sweep_scatter([{"alignment": 1.0, "uniformity": -2.0}])
    with pytest.raises(ValueError, match="list of dicts"):
        plots.plot_sweep_scatter({"alignment": 1.0})


# --------------------------------------------------------------------------- temperature curves

# Wang & Liu (2021), CIFAR-10: accuracy, uniformity (−L_uniform) and tolerance for four temperatures.
WANG_LIU = {
    "contrastive": ([0.7975, 0.8327, 0.8269, 0.8221], [3.86, 3.60, 3.17, 2.96], [0.04, 0.178, 0.333, 0.372]),
    "hard_contrastive": ([0.792, 0.8363, 0.8419, 0.8419], [3.87, 3.88, 3.89, 3.89], [0.03, 0.10, 0.15, 0.16]),
}
TAUS = [0.07, 0.3, 0.7, 1.0]


def temperature_records():
    return [
        {"loss": loss, "tau": tau, "accuracy": acc, "uniformity": -unif, "tolerance": tol}
        for loss, columns in WANG_LIU.items()
        for tau, acc, unif, tol in zip(TAUS, *columns)
    ]


def test_temperature_curves_plot_minus_uniformity_against_log_tau(tmp_path):
    records = temperature_records()[::-1]  # unsorted input
    records.append({"loss": "contrastive", "tau": 0.5, "accuracy": 0.83})  # missing values: accuracy panel only
    figure = plots.plot_temperature_curves(records, out=tmp_path / "temperature")
    assert_saved(tmp_path / "temperature")
    accuracy_axes, uniformity_axes, tolerance_axes = figure.axes
    assert [axes.get_xscale() for axes in figure.axes] == ["log"] * 3
    assert [axes.get_title() for axes in figure.axes] == ["Accuracy", "Uniformity", "Tolerance"]
    assert "−L_uniform" in uniformity_axes.get_ylabel()
    assert legend_texts(accuracy_axes) == ["contrastive", "hard_contrastive"]
    contrastive = uniformity_axes.lines[0]
    assert list(contrastive.get_xdata()) == TAUS
    assert list(contrastive.get_ydata()) == pytest.approx(WANG_LIU["contrastive"][1])
    assert len(accuracy_axes.lines[0].get_xdata()) == 5 and len(tolerance_axes.lines[0].get_xdata()) == 4


def test_temperature_curves_need_a_tau():
    with pytest.raises(ValueError, match="tau"):
        plots.plot_temperature_curves([{"loss": "contrastive", "accuracy": 0.8}])


# --------------------------------------------------------------------------- Theorem 1


def test_theorem1_subtracts_log_m_and_draws_the_limit(tmp_path):
    negatives = [1, 4, 16, 64, 256]
    losses = [2.0 + math.log(m) + 1.0 / m for m in negatives]
    figure = plots.plot_theorem1(negatives, losses, limit=2.0, out=tmp_path / "theorem1")
    assert_saved(tmp_path / "theorem1")
    (axes,) = figure.axes
    assert axes.get_xscale() == "log"
    assert axes.get_xlabel() == "number of negatives M" and "log M" in axes.get_ylabel()
    curve, limit_line = axes.lines
    assert list(curve.get_ydata()) == pytest.approx([2.0 + 1.0 / m for m in negatives])
    assert list(limit_line.get_ydata()) == [2.0, 2.0]


def test_theorem1_overlays_several_encoders():
    negatives = [16, 4, 64]  # any order
    values = {"aligned": [1.0, 1.5, 0.9], "uniform": [0.5, 0.7, 0.45]}
    figure = plots.plot_theorem1(negatives, values, {"aligned": 0.8, "uniform": 0.4}, subtract_log_m=False)
    axes = figure.axes[0]
    assert len(axes.lines) == 4
    assert list(axes.lines[0].get_xdata()) == [4, 16, 64]
    assert list(axes.lines[0].get_ydata()) == [1.5, 1.0, 0.9]
    assert legend_texts(axes)[0] == "aligned"
    shared = plots.plot_theorem1(negatives, values, 0.6)
    assert len(shared.axes[0].lines) == 3


def test_theorem1_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="one loss per M"):
        plots.plot_theorem1([1, 2, 4], [1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="positive numbers"):
        plots.plot_theorem1([0, 2], [1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="match no series"):
        plots.plot_theorem1([1, 2], {"a": [1.0, 2.0]}, {"b": 1.0})
    with pytest.raises(ValueError, match="limit must be"):
        plots.plot_theorem1([1, 2], [1.0, 2.0], "high")


# --------------------------------------------------------------------------- training curves


def epoch_records(epochs=6, scale=1.0):
    return [
        {
            "epoch": epoch,
            "loss": scale * (-2.0 + 1.0 / epoch),
            "align": 0.3 + 0.5 / epoch,
            "uniform": -3.0 + 1.0 / epoch,
            "val_alignment": 0.4 + 0.5 / epoch,
            "val_uniformity": -2.8 + 1.0 / epoch,
            "val_tolerance": 0.2,
            "knn_acc": 0.9 - 0.3 / epoch,
            "lr": 0.1 if epoch < 4 else 0.001,
            "seconds": 2.0,
            "phase": "train",  # text: not plotted
        }
        for epoch in range(1, epochs + 1)
    ]


def test_training_curves_group_metrics_into_panels(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(json.dumps(record) for record in epoch_records()) + "\n\n")
    figure = plots.plot_training_curves(path, out=tmp_path / "curves")
    assert_saved(tmp_path / "curves")
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == [
        "Training loss and loss terms",
        "Held-out alignment / uniformity",
        "Other held-out metrics",
        "Accuracy",
        "Learning rate",
        "Seconds per epoch",
    ]
    loss_axes = figure.axes[0]
    assert legend_texts(loss_axes) == ["loss", "align", "uniform"]
    assert list(loss_axes.lines[0].get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert figure.axes[4].get_yscale() == "log"  # lr spans 100×
    assert all(axes.get_xlabel() == "epoch" for axes in figure.axes)
    # A run folder works as well as the file.
    assert len(plots.plot_training_curves(path.parent).axes) == 6


def test_training_curves_overlay_runs_and_skip_missing_values():
    second = epoch_records(4, scale=2.0)
    second[1]["knn_acc"] = None
    figure = plots.plot_training_curves({"alexnet": epoch_records(), "resnet": second})
    accuracy_axes = figure.axes[3]
    assert legend_texts(accuracy_axes) == ["alexnet: knn_acc", "resnet: knn_acc"]
    assert list(accuracy_axes.lines[1].get_xdata()) == [1, 3, 4]
    assert accuracy_axes.lines[0].get_color() != accuracy_axes.lines[1].get_color()


def test_training_curves_without_epoch_use_the_record_index():
    figure = plots.plot_training_curves([{"loss": 3.0}, {"loss": 2.0}, {"loss": 1.5}])
    assert len(figure.axes) == 1
    assert list(figure.axes[0].lines[0].get_xdata()) == [1, 2, 3]


def test_training_curves_report_bad_input(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1, "loss": 1.0}\n{"epoch": 2, "loss": \n')
    with pytest.raises(ValueError, match="line 2"):
        plots.plot_training_curves(path)
    with pytest.raises(ValueError, match="no numeric metric"):
        plots.plot_training_curves([{"epoch": 1, "phase": "train"}])
    with pytest.raises(ValueError, match="run names"):
        plots.plot_training_curves({"a": 3})


@pytest.mark.parametrize(
    ("key", "group"),
    [
        ("epoch", None),
        ("loss", "loss"),
        ("contrastive", "loss"),
        ("hard_contrastive", "loss"),
        ("asymptotic_contrastive", "loss"),
        ("simple_2", "loss"),
        ("val_alignment", "held_out"),
        ("val_effective_rank", "held_out_other"),
        ("linear_acc", "accuracy"),
        ("lr", "lr"),
        ("seconds", "time"),
        ("grad_norm", "other"),
    ],
)
def test_metric_group(key, group):
    assert plots.metric_group(key) == group


# --------------------------------------------------------------------------- saving


def test_output_stem_keeps_dotted_names_and_strips_figure_suffixes(tmp_path):
    assert plots.output_stem(tmp_path / "tau0.5") == tmp_path / "tau0.5"
    assert plots.output_stem(tmp_path / "fig.svg") == tmp_path / "fig"
    figure = plots.plot_theorem1([1, 2], [1.0, 1.5], 1.0)
    png, svg = plots.save_figure(figure, tmp_path / "a" / "tau0.5")
    assert png.name == "tau0.5.png" and svg.name == "tau0.5.svg" and png.exists() and svg.exists()


@pytest.mark.slow
def test_importing_plots_leaves_pyplot_alone():
    code = "import sys, aligniform.plots, aligniform.report; print('matplotlib.pyplot' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
