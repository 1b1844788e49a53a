"""Figures of the papers, drawn from plain data (numpy arrays, tensors, lists of dicts).

Every ``plot_*`` function returns a matplotlib ``Figure`` and, when ``out`` is
given, saves ``<out>.png`` and ``<out>.svg`` (creating parent folders). Figures
are built with ``matplotlib.figure.Figure`` and the Agg canvas, never pyplot, so
importing this module neither needs a display nor changes the user's backend.

Examples:
    >>> import numpy as np
    >>> from aligniform.plots import plot_alignment_histogram
    >>> z = np.eye(4)
    >>> figure = plot_alignment_histogram(z, z[[1, 2, 3, 0]])
    >>> len(figure.axes)
    1
"""

from ._figure import new_figure, output_stem, png_bytes, save_figure
from .alignment import plot_alignment_histogram, positive_pair_distances
from .family import plot_family_map
from .hypersphere import DEFAULT_KAPPA, plot_hypersphere, vmf_kde
from .latent_classes import plot_latent_classes
from .sweeps import plot_metric_scatter, plot_sweep_scatter, plot_temperature_curves, sweep_correlations
from .theorem1 import plot_theorem1, plot_theorem1_gaps
from .training import metric_group, plot_training_curves
from .trajectory import Trajectory, plot_trajectory, trajectory_points

__all__ = [
    "DEFAULT_KAPPA",
    "Trajectory",
    "metric_group",
    "new_figure",
    "output_stem",
    "plot_alignment_histogram",
    "plot_family_map",
    "plot_hypersphere",
    "plot_latent_classes",
    "plot_metric_scatter",
    "plot_sweep_scatter",
    "plot_temperature_curves",
    "plot_theorem1",
    "plot_theorem1_gaps",
    "plot_training_curves",
    "plot_trajectory",
    "png_bytes",
    "positive_pair_distances",
    "save_figure",
    "sweep_correlations",
    "trajectory_points",
    "vmf_kde",
]
