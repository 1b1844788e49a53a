"""Tests of aligniform.analysis.figures: the pictures `aligniform analyze --figures` draws."""

import numpy as np

from aligniform.analysis import EmbeddingSet
from aligniform.analysis.figures import analysis_figures


def test_figures_follow_what_the_embeddings_hold(tmp_path):
    rng = np.random.default_rng(0)
    x = 3 * rng.normal(size=(40, 2))  # not unit-norm: drawn after --normalize
    written = analysis_figures(EmbeddingSet(x, x + 0.1), tmp_path / "both", normalize=True)
    assert written == [str(tmp_path / "both" / "alignment_histogram.png"), str(tmp_path / "both" / "hypersphere.png")]
    assert all((tmp_path / "both" / name).is_file() for name in ("alignment_histogram.svg", "hypersphere.svg"))
    # No partners and d = 3: neither picture applies.
    assert analysis_figures(EmbeddingSet(rng.normal(size=(10, 3))), tmp_path / "none", normalize=True) == []
    assert not (tmp_path / "none").exists()
