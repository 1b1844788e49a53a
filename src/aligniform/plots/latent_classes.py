"""Arora et al. (2019): the mean classifier against the unsupervised loss, and Lemma 4.3's bound."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from ._figure import finish, new_figure


def plot_latent_classes(settings: Sequence[Mapping], out: str | Path | None = None) -> Figure:
    """Left: accuracy against L_un over training; right: L_sup^μ against Arora's bound (must lie below y = x).

    Args:
        settings: one dict per latent-class setting, as the ``latent-classes``
            study makes them: ``num_classes``, ``collision_probability`` (τ) and
            ``records``, one dict per checkpoint with ``unsupervised_loss``,
            ``accuracy``, ``binary_loss`` (the mean classifier's L_sup^μ) and
            ``sup_bound`` ((L_un − τ log 2) / (1 − τ)). The first record is the
            initialisation, marked with a cross.
        out: when given, save ``<out>.png`` and ``<out>.svg``.

    Returns:
        The matplotlib ``Figure`` (two axes).

    Raises:
        ValueError: no setting has a record.

    Examples:
        >>> records = [{"unsupervised_loss": 0.7 - s / 10, "accuracy": 0.5 + s / 10, "binary_loss": 0.5 - s / 10,
        ...             "sup_bound": 0.6 - s / 10} for s in range(3)]
        >>> figure = plot_latent_classes([{"num_classes": 4, "collision_probability": 0.25, "records": records}])
        >>> [axes.get_xlabel() for axes in figure.axes]
        ['unsupervised loss L_un (held out)', "Arora's bound (L_un − τ log 2) / (1 − τ)"]
    """
    records_of = [setting["records"] for setting in settings]
    if not any(records_of):
        raise ValueError("settings must hold at least one checkpoint record")
    figure = new_figure(11.0, 4.0)
    accuracy_axes, bound_axes = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for index, (setting, records) in enumerate(zip(settings, records_of)):
        if not records:
            continue
        label = f"K = {setting['num_classes']} (τ = {setting['collision_probability']:.3g})"
        color = f"C{index % 10}"
        accuracy_axes.plot(
            [r["unsupervised_loss"] for r in records],
            [r["accuracy"] for r in records],
            "o-",
            color=color,
            markersize=3,
            label=label,
        )
        accuracy_axes.plot(records[0]["unsupervised_loss"], records[0]["accuracy"], "x", color=color, markersize=8)
        bound_axes.plot(
            [r["sup_bound"] for r in records],
            [r["binary_loss"] for r in records],
            "o-",
            color=color,
            markersize=3,
            label=label,
        )
    accuracy_axes.set_xlabel("unsupervised loss L_un (held out)")
    accuracy_axes.set_ylabel("mean-classifier accuracy (held out)")
    accuracy_axes.set_title("accuracy follows L_un (× = initialisation)", fontsize=10)
    every = [r for records in records_of for r in records]
    limits = [min(r["binary_loss"] for r in every), max(r["sup_bound"] for r in every)]
    bound_axes.plot(limits, limits, "k--", linewidth=1, label="L_sup^μ = bound")
    bound_axes.set_xlabel("Arora's bound (L_un − τ log 2) / (1 − τ)")
    bound_axes.set_ylabel("mean classifier's L_sup^μ (binary tasks)")
    bound_axes.set_title("Lemma 4.3: points lie below the diagonal", fontsize=10)
    for axes in (accuracy_axes, bound_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return finish(figure, out)
