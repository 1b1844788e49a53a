"""The shipped configs, as package data: training recipes (``*.yaml``) and sweep grids (``sweeps/*.yaml``).

=====================================  ==========================================================
name                                   what
=====================================  ==========================================================
``mnist5k``                            the CPU recipe behind the demo
``stl10_paper``                        Wang & Isola's STL-10 recipe (SmallAlexNet, 64×64)
``cifar10_resnet18``                   Wang & Liu's CIFAR-10 setting (ResNet-18, MoCo queue)
``sweeps/mnist5k_correlation``         the 24 encoders of the correlation study
``sweeps/figure5_mnist5k``             Wang & Isola's Figure 5, pre-registered: 44 encoders on mnist5k
``sweeps/figure5_digits``              the same 44 encoders on sklearn digits
``sweeps/figure5_seeds_mnist5k``       its seed-spread precondition: 3 seeds of align + uniform
``sweeps/figure5_seeds_digits``        the same on digits
``sweeps/budget_ratio_mnist5k``        W&I's weight-ratio ablation at two budgets, 3 seeds
``sweeps/budget_ratio_digits``         the same on digits
``sweeps/budget_debiased_mnist5k``     debiased contrastive against NT-Xent
=====================================  ==========================================================

Everywhere a config or grid path is accepted, a shipped name works too (:func:`find_config`; a path that
exists wins): ``aligniform train --config mnist5k``, ``aligniform sweep mnist5k_correlation``.
``aligniform configs`` lists them with :func:`config_description`.

Examples:
    >>> from aligniform.configs import config_path, config_names
    >>> config_path("mnist5k").name
    'mnist5k.yaml'
    >>> "sweeps/mnist5k_correlation" in config_names()
    True
"""

from ._find import config_description, config_names, config_path, find_config

__all__ = ["config_description", "config_names", "config_path", "find_config"]
