"""Synthetic data with known structure, for the studies: latent classes and positive pairs on the sphere.

* :class:`LatentClassModel`: Arora et al.'s (2019) latent-class model, Gaussian
  classes in R^dim, for the ``latent-classes`` study;
* :func:`mixture_positive_pairs`: positive pairs on S^{d−1} from a vMF-like
  mixture, for the ``theorem1`` study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


class LatentClassModel:
    """Arora et al.'s latent-class data model with Gaussian class distributions in R^dim.

    A latent class c ~ ρ; D_c is a Gaussian around a class mean. A positive
    pair is two independent draws from one D_c; a negative is a draw from a
    fresh class c⁻ ~ ρ, which collides with c (c⁻ = c) with probability
    τ = Σ_c ρ_c².

    Class means μ_c ~ N(0, I) (drawn once from ``seed``); D_c = N(μ_c, s² I) with
    s = ``within_class_spread``, so s is the ratio of within-class to
    between-class spread per coordinate (larger is harder). Classes are drawn
    from ρ = ``class_probs`` (uniform by default). Every sampling call advances
    the model's own seeded generator, so a model replays the same stream.

    Args:
        num_classes: number of latent classes (>= 2).
        dim: input dimension.
        within_class_spread: standard deviation s of D_c around its mean.
        class_probs: ρ, non-negative weights (normalised here); uniform if None.
        seed: seed of the class means and of the sampling stream.

    Examples:
        >>> model = LatentClassModel(4, dim=8, within_class_spread=0.5, seed=0)
        >>> x, x_pos, labels = model.positive_pairs(5)
        >>> x.shape, model.collision_probability()
        (torch.Size([5, 8]), 0.25)
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        within_class_spread: float,
        class_probs: Sequence[float] | torch.Tensor | None = None,
        seed: int = 0,
    ):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not within_class_spread >= 0:
            raise ValueError(f"within_class_spread must be >= 0, got {within_class_spread}")
        self.num_classes, self.dim, self.spread = int(num_classes), int(dim), float(within_class_spread)
        self.class_probs = self._probabilities(class_probs)
        means_generator = torch.Generator().manual_seed(seed)
        self.class_means = torch.randn(self.num_classes, self.dim, generator=means_generator)
        self.generator = torch.Generator().manual_seed(seed + 1)

    def _probabilities(self, class_probs: Sequence[float] | torch.Tensor | None) -> torch.Tensor:
        if class_probs is None:
            return torch.full((self.num_classes,), 1.0 / self.num_classes, dtype=torch.float64)
        probs = torch.as_tensor(class_probs, dtype=torch.float64).flatten()
        if probs.numel() != self.num_classes or bool((probs < 0).any()) or float(probs.sum()) <= 0:
            raise ValueError(f"class_probs must be {self.num_classes} non-negative weights with a positive sum")
        return probs / probs.sum()

    def collision_probability(self) -> float:
        """τ = P(c⁺ = c⁻) = Σ_c ρ_c²: how often a negative comes from the anchor's own class."""
        return float((self.class_probs**2).sum())

    def draw_classes(self, n: int) -> torch.Tensor:
        """N class labels drawn independently from ρ."""
        return torch.multinomial(self.class_probs, n, replacement=True, generator=self.generator)

    def draw_from_classes(self, labels: torch.Tensor) -> torch.Tensor:
        """One draw from D_c for each label c: μ_c + s·g."""
        noise = torch.randn(len(labels), self.dim, generator=self.generator)
        return self.class_means[labels] + self.spread * noise

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """N labelled samples: c ~ ρ, x ~ D_c. Returns ``(x, labels)``."""
        labels = self.draw_classes(n)
        return self.draw_from_classes(labels), labels

    def positive_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """N positive pairs: c ~ ρ, then x and x⁺ drawn independently from D_c. Returns ``(x, x_pos, labels)``."""
        labels = self.draw_classes(n)
        return self.draw_from_classes(labels), self.draw_from_classes(labels), labels

    def negatives(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """N negatives: a fresh class c⁻ ~ ρ each (so it collides with an anchor's class with prob. τ)."""
        return self.sample(n)

    def labelled_sample(self, n: int, attempts: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        """N labelled samples from ρ, redrawn until every class has one (so every class mean exists).

        Raises:
            ValueError: ``attempts`` draws all missed a class (``n`` is too small for ρ).
        """
        for _ in range(attempts):
            x, labels = self.sample(n)
            if len(torch.unique(labels)) == self.num_classes:
                return x, labels
        raise ValueError(f"{n} labelled samples do not cover all {self.num_classes} classes; raise 'labelled'")


def mixture_positive_pairs(
    n: int,
    dim: int,
    components: int,
    spread: float,
    view_noise: float,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive pairs on S^{d−1} from a vMF-like mixture: two noisy views of one latent point.

    A latent point is ``normalize(c_k + spread·g/√d)`` around a random unit centre
    c_k (k uniform over ``components``); its views are
    ``normalize(latent + view_noise·g'/√d)`` with independent Gaussian g'. The
    1/√d scaling makes the noise norm ≈ ``spread`` / ``view_noise`` in any dimension.
    Both views have the same distribution, so negatives from either view are
    draws from p_data.

    Returns:
        ``(x, y)``: two (n, dim) unit-norm tensors of ``dtype``, row i a positive pair.

    Examples:
        >>> x, y = mixture_positive_pairs(100, 8, components=3, spread=0.5, view_noise=0.2)
        >>> x.shape, bool((x * y).sum(1).mean() > 0.8)
        (torch.Size([100, 8]), True)
    """
    generator = torch.Generator().manual_seed(seed)

    def noise(scale: float) -> torch.Tensor:
        return scale * torch.randn(n, dim, generator=generator, dtype=dtype) / math.sqrt(dim)

    centres = F.normalize(torch.randn(components, dim, generator=generator, dtype=dtype), dim=1)
    component = torch.randint(components, (n,), generator=generator)
    latent = F.normalize(centres[component] + noise(spread), dim=1)
    return F.normalize(latent + noise(view_noise), dim=1), F.normalize(latent + noise(view_noise), dim=1)
