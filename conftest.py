"""Collection settings for `make test`, which runs the tests and the package's docstring examples together.

Every module of the package imports without the optional extras (sentence-transformers, tensorboard are
imported inside the functions that need them), so `--doctest-modules` can import them all. A module that
ever needs an extra at import time must be added to `collect_ignore` when that extra is absent.
"""

# Importing `python -m aligniform`'s entry point would run the command line.
collect_ignore = ["src/aligniform/__main__.py"]


# aligniform.integrations' framework modules import their framework (the `integrations` extra), named alike.
def _importable(name):
    from importlib.util import find_spec

    return find_spec(name) is not None


collect_ignore += [
    f"src/aligniform/integrations/{framework}.py"
    for framework in ("torchmetrics", "lightning", "transformers", "sentence_transformers")
    if not _importable(framework)
]
