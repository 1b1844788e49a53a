"""The correlation study's encoders: constants of the design, reading a sweep's rows, and each encoder's role.

The verdict rules and statistics are in :mod:`.correlation_rules`, the report in :mod:`.correlation_report`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import cast

from .._numerics import is_finite_number as _finite
from ..configs import config_path
from ..sweep import ROLE_COLUMNS
from .verdicts import Verdict

#: The shipped grid (package data, see :func:`aligniform.configs.config_path`).
DEFAULT_GRID = "sweeps/mnist5k_correlation"
#: Where the pre-registered design lives (quoted in the outputs).
DESIGN = "docs/results/correlation_design.md"

#: The metrics of the claim (lower is better for both).
METRICS = ("alignment", "uniformity")
#: The accuracies, primary first, with their names in the report.
ACCURACIES = {
    "knn_acc": "output 5-NN",
    "linear_acc": "output linear",
    "mean_classifier_acc": "output mean classifier",
    "backbone_linear_acc": "backbone linear",
    "backbone_knn_acc": "backbone 5-NN",
}
#: The accuracy that decides the verdicts (design section 2).
PRIMARY_ACCURACY = "knn_acc"
#: An encoder is collapsed when its L_uniform(t = 2) on the test set exceeds this (design section 2).
COLLAPSE_THRESHOLD = -0.5
#: The secondary evaluation of each run's backbone (``aligniform eval CHECKPOINT --layer backbone``).
BACKBONE_FILE = "eval_backbone.json"
#: The backbone accuracies read from it: results.json key -> sweep row key.
BACKBONE_ACCURACIES = {"linear_acc": "backbone_linear_acc", "knn_acc": "backbone_knn_acc"}

#: Weight ratios w = align weight / uniform weight of α = 2, t = 2 encoders that should work (design section 4).
MODERATE_RATIOS = (0.25, 0.5, 0.98 / 0.96, 1.0, 2.0, 4.0)
#: Weight ratios that should collapse or fall further below the best moderate encoder.
LARGE_RATIOS = (8.0, 16.0)
#: Settings that define "the same set-up" as the grid's base (the most common value of each column).
SETTING_KEYS = ("batch_size", "dim", "epochs", "lr")
#: The seed-spread precondition: across-encoder sd ≥ this many seed sds (design section 6).
PRECONDITION_RATIO = 3.0

# The verdict words of the design (ablation predictions; interval rules).
HOLDS, FAILS, NOT_EVALUABLE = Verdict.HOLDS, Verdict.FAILS, Verdict.NOT_EVALUABLE
REPRODUCES, CONTRADICTED, NOT_SHOWN, PARTLY = (
    Verdict.REPRODUCES,
    Verdict.CONTRADICTED,
    Verdict.NOT_SHOWN,
    Verdict.PARTLY,
)


def grid_file(grid: str | None) -> Path:
    """The sweep grid to run: a YAML file, a shipped grid's name (``"sweeps/figure5_mnist5k"``) or the default.

    Examples:
        >>> grid_file(None).name
        'mnist5k_correlation.yaml'
        >>> grid_file("sweeps/figure5_digits").name
        'figure5_digits.yaml'
    """
    if grid is None:
        return config_path(DEFAULT_GRID)
    path = Path(grid).expanduser()
    return path if path.is_file() else config_path(grid)


# ----------------------------------------------------------------------------- reading the encoders


def _points(value: object) -> float | None:
    """An accuracy fraction as points (0.953 -> 95.3); None when missing."""
    return 100.0 * float(value) if _finite(value) else None


def _all_finite(values: list) -> list[float] | None:
    """The values as floats when there are some and every one is a finite number, else None."""
    return [float(value) for value in values] if values and all(_finite(value) for value in values) else None


def add_backbone_accuracies(rows: list[dict], out: str | Path) -> int:
    """Add ``backbone_linear_acc`` / ``backbone_knn_acc`` from each run's ``eval_backbone.json``; return how many.

    Runs without the file are left as they are (the backbone evaluation is a secondary step of the design).

    Raises:
        ValueError: a file exists but is not a JSON object (naming the file).
    """
    import json

    found = 0
    for row in rows:
        path = Path(out) / str(row.get("run", "")) / BACKBONE_FILE
        if not path.is_file():
            continue
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the backbone evaluation {path}: {error}") from None
        if not isinstance(results, dict):
            raise ValueError(f"the backbone evaluation {path} is not a JSON object")
        for source, target in BACKBONE_ACCURACIES.items():
            if _finite(results.get(source)):
                row[target] = float(results[source])
        found += 1
    return found


def flag_collapsed(rows: list[dict], threshold: float = COLLAPSE_THRESHOLD) -> None:
    """Set each row's ``collapsed``: uniformity > ``threshold`` (``None`` when the row has no uniformity).

    Examples:
        >>> rows = [{"uniformity": -3.4}, {"uniformity": -0.06}, {"uniformity": ""}]
        >>> flag_collapsed(rows)
        >>> [row["collapsed"] for row in rows]
        [False, True, None]
    """
    for row in rows:
        value = row.get("uniformity")
        row["collapsed"] = bool(value > threshold) if _finite(value) else None


def read_seed_spread(folder: str | Path) -> dict:
    """The seed standard deviation (``ddof=1``) of every accuracy (in points) and metric of a seed sweep.

    Args:
        folder: the sweep folder of the seed runs (its ``sweep.csv``; ``eval_backbone.json`` files are read too),
            or that ``sweep.csv`` itself.

    Returns:
        ``{"folder", "runs", "values": {key: [...]}, "sd": {key: sd}}``; accuracies in points.

    Raises:
        ValueError: no sweep.csv there, or fewer than 2 runs with the primary accuracy.
    """
    from ..sweep import read_sweep

    folder = Path(folder).expanduser()
    if folder.name == "sweep.csv":
        folder = folder.parent
    if not (folder / "sweep.csv").is_file():
        raise ValueError(f"seeds: {folder} has no sweep.csv; run the seed sweep first (docs/studies.md)")
    rows = read_sweep(folder)
    add_backbone_accuracies(rows, folder)
    values: dict[str, list[float]] = {}
    for key in (*ACCURACIES, *METRICS):
        numbers = [_points(row.get(key)) if key in ACCURACIES else row.get(key) for row in rows]
        values[key] = [number for number in numbers if _finite(number)]
    if len(values[PRIMARY_ACCURACY]) < 2:
        raise ValueError(f"seeds: {folder}/sweep.csv needs at least 2 runs with {PRIMARY_ACCURACY}")
    spread = {key: statistics.stdev(numbers) for key, numbers in values.items() if len(numbers) >= 2}
    return {"folder": str(folder), "runs": len(rows), "values": values, "sd": spread}


# ----------------------------------------------------------------------------- ablation (design section 4)


def objective_terms(text: object) -> list[tuple[str, float, dict]] | None:
    """``[(name, weight, arguments)]`` of an objective string (arguments with defaults), or None if it does not parse.

    Examples:
        >>> [(name, weight, arguments["t"]) for name, weight, arguments in objective_terms("0.5*uniform(t=2)")]
        [('uniform', 0.5, 2.0)]
        >>> objective_terms("not an objective") is None
        True
    """
    from ..objective import Objective

    if not isinstance(text, str):
        return None
    try:
        objective = Objective.parse(text)
    except ValueError:
        return None
    return [
        (str(term.name), float(cast(float, term.weight)), dict(cast(dict, term.values))) for term in objective.terms
    ]


def encoder_role(row: dict) -> tuple[str, float] | None:
    """The row's part in the ablation: ``("align alone", α)``, ``("uniform alone", t)``, ``("ratio", w)``, or None.

    A sweep whose grid gives each run its role (:mod:`aligniform.sweep`) writes it into the row (``role``,
    ``role_value``; an empty ``role``: none); a row without those columns, from a grid without roles or a
    sweep.csv written before grids had them, gets the role its objective names (:func:`objective_role`).

    Examples:
        >>> encoder_role({"objective": "4*align(alpha=2) + uniform(t=2)", "role": "ratio", "role_value": 4.0})
        ('ratio', 4.0)
        >>> encoder_role({"objective": "4*align(alpha=2) + uniform(t=2)", "role": "", "role_value": ""}) is None
        True
        >>> encoder_role({"objective": "4*align(alpha=2) + uniform(t=2)"})
        ('ratio', 4.0)
    """
    name_column, value_column = ROLE_COLUMNS
    if name_column not in row:
        return objective_role(row.get("objective"))
    name, value = row[name_column], row.get(value_column)
    if name in (None, ""):
        return None
    if not _finite(value):
        raise ValueError(f"run {row.get('run')!r} has the role {name!r} without a number ({value_column} {value!r})")
    return str(name), float(value)


def objective_role(objective: object) -> tuple[str, float] | None:
    """The ablation role an objective string names, as :func:`encoder_role` (for rows without a recorded role).

    ``ratio`` is an align(α = 2) + uniform(t = 2) sum with w = align weight / uniform weight; anything else
    is None.

    Examples:
        >>> objective_role("4*align(alpha=2) + uniform(t=2)")
        ('ratio', 4.0)
        >>> objective_role("align(alpha=1)"), objective_role("contrastive(tau=0.2)")
        (('align alone', 1.0), None)
    """
    terms = objective_terms(objective)
    if not terms:
        return None
    if len(terms) == 1:
        name, _, arguments = terms[0]
        if name == "align":
            return ("align alone", float(arguments["alpha"]))
        if name == "uniform":
            return ("uniform alone", float(arguments["t"]))
        return None
    by_name = {name: (weight, arguments) for name, weight, arguments in terms}
    if len(terms) == 2 and set(by_name) == {"align", "uniform"}:
        (align_weight, align_arguments), (uniform_weight, uniform_arguments) = by_name["align"], by_name["uniform"]
        if float(align_arguments["alpha"]) == 2 and float(uniform_arguments["t"]) == 2:
            return ("ratio", align_weight / uniform_weight)
    return None


def base_settings(rows: list[dict]) -> dict[str, object]:
    """The grid's shared set-up: the most common value of each of :data:`SETTING_KEYS` among the rows.

    Examples:
        >>> base_settings([{"batch_size": 256, "lr": 0.12}, {"batch_size": 256}, {"batch_size": 64}])
        {'batch_size': 256, 'dim': None, 'epochs': None, 'lr': 0.12}
    """
    settings: dict[str, object] = {}
    for key in SETTING_KEYS:
        counts = Counter(row.get(key) for row in rows if row.get(key) not in (None, ""))
        settings[key] = counts.most_common(1)[0][0] if counts else None
    return settings


def _at_base(row: dict, base: dict[str, object]) -> bool:
    return all(row.get(key) in (None, "") if value is None else row.get(key) == value for key, value in base.items())
