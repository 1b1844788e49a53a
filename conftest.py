"""Collection settings for `make test`, which runs the tests and the package's docstring examples together.

Every module of the package imports without the optional extras (sentence-transformers, tensorboard are
imported inside the functions that need them), so `--doctest-modules` can import them all. A module that
ever needs an extra at import time must be added to `collect_ignore` when that extra is absent.
"""

# Importing `python -m aligniform`'s entry point would run the command line.
collect_ignore = ["src/aligniform/__main__.py"]
