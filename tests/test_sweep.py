"""Sweeps: grid expansion, resumable runs in separate processes, sweep.csv, emitted commands; the correlation study."""

import csv
import json
import shlex

import pytest
import yaml

from aligniform.cli import main
from aligniform.config import ConfigError
from aligniform.studies.correlation import rank_correlations
from aligniform.sweep import load_grid, read_sweep

TINY_BASE = {"dataset": "digits", "epochs": 1, "batch_size": 128, "dim": 8, "linear_probe": "none"}


def write_grid(path, **sections):
    path.write_text(yaml.safe_dump(sections))
    return path


def test_grid_expansion_and_stable_names(tmp_path):
    grid = write_grid(
        tmp_path / "g.yaml",
        base=TINY_BASE,
        grid={"objective": ["contrastive(tau=0.5)", "align(alpha=2) + uniform(t=2)"], "dim": [4, 8]},
        runs=[{"objective": "uniform(t=3)"}],
    )
    runs = load_grid(grid)
    assert len(runs) == 5
    assert runs[0].options == {**TINY_BASE, "objective": "contrastive(tau=0.5)", "dim": 4}
    assert runs[4].options["objective"] == "uniform(t=3)"
    assert [r.name for r in runs] == [r.name for r in load_grid(grid)]  # names are stable
    assert len({r.name for r in runs}) == 5


@pytest.mark.parametrize(
    "sections,message",
    [
        ({"grid": {"epochs": 3}}, "non-empty list"),
        ({"runs": [{"objective": "nope(1)"}]}, "run 0"),
        ({"runs": [{"epochs": 0}]}, "`epochs` must be a positive"),
        ({"grids": {}}, "sections base, grid"),
    ],
)
def test_bad_grids(tmp_path, sections, message):
    with pytest.raises(ConfigError, match=message):
        load_grid(write_grid(tmp_path / "g.yaml", **sections))


def test_emit_commands(tmp_path, capsys):
    grid = write_grid(tmp_path / "g.yaml", base=TINY_BASE, grid={"seed": [1, 2, 3]})
    assert main(["sweep", str(grid), "--out", str(tmp_path / "s"), "--emit-commands"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    command = shlex.split(lines[0])
    assert command[1:4] == ["-m", "aligniform", "train"] and "--config" in command
    requested = yaml.safe_load((tmp_path / "s" / load_grid(grid)[0].name / "requested.yaml").read_text())
    assert requested["seed"] == 1 and requested["dataset"] == "digits"


@pytest.mark.slow
def test_sweep_runs_resumes_and_summarises(tmp_path, capsys):
    grid = write_grid(
        tmp_path / "g.yaml",
        base=TINY_BASE,
        grid={"objective": ["contrastive(tau=0.5)", "align(alpha=2) + uniform(t=2)"]},
    )
    out = tmp_path / "s"
    assert main(["sweep", str(grid), "--out", str(out), "--workers", "2"]) == 0
    rows = read_sweep(out)
    assert len(rows) == 2
    for row in rows:
        results = json.loads((out / row["run"] / "results.json").read_text())
        assert row["knn_acc"] == pytest.approx(results["knn_acc"])
        assert row["wall_seconds"] > 0 and row["dim"] == 8
    with (out / "sweep.csv").open() as handle:
        header = next(csv.reader(handle))
    assert {"run", "objective", "alignment", "uniformity", "knn_acc", "wall_seconds"} <= set(header)
    # a second call finds everything finished and trains nothing
    stamp = (out / rows[0]["run"] / "results.json").stat().st_mtime
    capsys.readouterr()
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    assert "2 already finished, 0 to run" in capsys.readouterr().out
    assert (out / rows[0]["run"] / "results.json").stat().st_mtime == stamp


def test_rank_correlations_match_scipy_and_sign():
    rows = [
        {"alignment": a, "uniformity": u, "linear_acc": acc, "knn_acc": acc}
        for a, u, acc in [(0.1, -3.0, 0.9), (0.2, -2.5, 0.8), (0.3, -2.0, 0.7), (0.5, -1.0, 0.4), (0.4, -1.5, 0.5)]
    ]
    table = rank_correlations(rows)
    assert table["alignment~linear_acc"]["spearman"] == pytest.approx(-1.0)
    assert table["uniformity~knn_acc"]["kendall"] == pytest.approx(-1.0)
    assert rank_correlations(rows[:2])["alignment~linear_acc"]["spearman"] is None


@pytest.mark.parametrize(
    "text,message",
    [
        ("base: {dataset: [digits\n", r"g\.yaml is not valid YAML \(line 2"),
        ("[1, 2]\n", r"g\.yaml has a YAML list"),
        ("base: [1]\n", r"base of .*g\.yaml must be a mapping"),
        ("grid: [seed]\n", r"grid of .*g\.yaml must be a mapping"),
        ("runs: [[1]]\n", r"runs entry 0 of .*g\.yaml must be a mapping"),
        ("runs: {seed: 1}\n", r"section runs of .*g\.yaml must be a list"),
        ("base: {out: runs/a}\n", r"sets out, which a sweep chooses itself"),
        ("runs: [{seed: 1}, {seed: 1}]\n", r"runs 0 and 1 of .*g\.yaml have the same options"),
    ],
)
def test_malformed_grid_files_name_the_file(tmp_path, text, message):
    (tmp_path / "g.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_grid(tmp_path / "g.yaml")


def test_progress_in_a_grid_is_ignored_not_a_second_run(tmp_path):
    grid = write_grid(tmp_path / "g.yaml", base={**TINY_BASE, "progress": True})
    assert [run.options for run in load_grid(grid)] == [TINY_BASE]


def test_sweep_failures_are_runtime_errors_listing_the_runs():
    from aligniform.sweep import SweepRunsFailed

    error = SweepRunsFailed("1 of 2 run(s) failed: run001-abc", ["run001-abc"])
    assert isinstance(error, RuntimeError) and error.failed == ["run001-abc"]


@pytest.mark.slow
def test_a_run_refused_by_train_fails_alone_and_the_sweep_says_which(tmp_path, capsys):
    # batch_size 5000 is valid as an option but larger than the digits training set: train refuses it.
    grid = write_grid(tmp_path / "g.yaml", base=TINY_BASE, runs=[{"seed": 1}, {"seed": 2, "batch_size": 5000}])
    failing = load_grid(grid)[1].name
    assert main(["sweep", str(grid), "--out", str(tmp_path / "s")]) == 1
    captured = capsys.readouterr()
    assert f"{failing}: FAILED (exit 2)" in captured.out and "Traceback" not in captured.err
    assert captured.err.strip().splitlines() == [captured.err.strip()] and failing in captured.err
    assert len(read_sweep(tmp_path / "s")) == 1


def test_grid_size_is_the_product_of_list_lengths_plus_listed_runs():
    from aligniform.sweep import grid_size

    assert grid_size({"a": [1, 2], "b": [1, 2, 3]}, []) == 6
    assert grid_size({"a": [1, 2]}, [{}, {}]) == 4
    assert grid_size({}, []) == 1  # the base alone is one run
    assert grid_size({f"o{i}": list(range(8)) for i in range(10)}, []) == 8**10


def test_a_grid_above_max_runs_is_refused_before_any_run_is_checked(tmp_path, monkeypatch):
    from aligniform import sweep
    from aligniform.errors import OptionError

    grid = write_grid(tmp_path / "g.yaml", base=TINY_BASE, grid={f"o{i}": list(range(8)) for i in range(10)})
    checked = []
    monkeypatch.setattr(sweep.TrainConfig, "from_dict", lambda values: checked.append(values))
    with pytest.raises(OptionError, match=r"makes 1,073,741,824 runs \(grid 8 x 8 .*more than `max_runs` \(10,000\)"):
        load_grid(grid)
    assert checked == []
    with pytest.raises(ConfigError, match="`max_runs`"):
        sweep.run_sweep(grid, tmp_path / "out", emit_commands=True)
    assert not (tmp_path / "out").exists()


def test_max_runs_is_a_limit_on_grid_and_listed_runs_together(tmp_path):
    grid = write_grid(tmp_path / "g.yaml", base=TINY_BASE, grid={"seed": [0, 1, 2]}, runs=[{"seed": 7}])
    assert len(load_grid(grid, max_runs=4)) == 4
    assert len(load_grid(grid, max_runs=None)) == 4
    with pytest.raises(ConfigError, match=r"makes 4 runs \(grid 3 \+ 1 listed runs\), more than `max_runs` \(3\)"):
        load_grid(grid, max_runs=3)
    with pytest.raises(ValueError, match="max_runs"):
        load_grid(grid, max_runs=0)


def test_the_grid_is_expanded_lazily(tmp_path, monkeypatch):
    """Runs are checked one at a time as the product yields them: a bad first run stops before the rest."""
    from aligniform import sweep

    grid = write_grid(tmp_path / "g.yaml", base=TINY_BASE, grid={"epochs": [0, 1, 2], "seed": list(range(100))})
    seen = []
    original = sweep.TrainConfig.from_dict

    def spy(values):
        seen.append(values)
        return original(values)

    monkeypatch.setattr(sweep.TrainConfig, "from_dict", spy)
    with pytest.raises(ConfigError, match="run 0 of"):
        load_grid(grid)
    assert len(seen) == 1


# ----------------------------------------------------------------------------- roles


def _finish(run, out, results):
    """Make ``out/<run>`` look finished: its config and a results.json (what :func:`finished_results` reads)."""
    folder = out / run.name
    folder.mkdir(parents=True)
    run.config(out).to_yaml(folder / "config.yaml")
    (folder / "results.json").write_text(json.dumps(results))


def test_roles_are_carried_by_the_grid_not_the_runs_options(tmp_path):
    objectives = ["align(alpha=2) + uniform(t=2)", "4*align(alpha=2) + uniform(t=2)"]
    plain = write_grid(tmp_path / "plain.yaml", base=TINY_BASE, grid={"seed": [0, 1], "objective": objectives},
                       runs=[{"objective": "uniform(t=2)"}, {"objective": "contrastive(tau=0.5)"}])  # fmt: skip
    tagged = write_grid(
        tmp_path / "tagged.yaml",
        base=TINY_BASE,
        grid={"seed": [0, 1], "objective": [{"objective": objectives[0], "role": {"ratio": 1}},
                                            {"objective": objectives[1], "role": {"ratio": 4}}]},
        runs=[{"objective": "uniform(t=2)", "role": {"uniform alone": 2}}, {"objective": "contrastive(tau=0.5)"}],
    )  # fmt: skip
    before, after = load_grid(plain), load_grid(tagged)
    # the same run folders (names hash the options) and options: a role is not a training option
    assert [(run.name, run.options) for run in after] == [(run.name, run.options) for run in before]
    assert all("role" not in run.options for run in after)
    assert [run.role for run in before] == [None] * 6
    # (safe_dump sorts the grid's keys: objective is the outer loop)
    assert [run.role for run in after] == [("ratio", 1.0)] * 2 + [("ratio", 4.0)] * 2 + [("uniform alone", 2.0), None]
    # a role in base applies to every run
    assert {run.role for run in load_grid(write_grid(tmp_path / "b.yaml", base={**TINY_BASE, "role": {"x": 3}}))} == {
        ("x", 3.0)
    }


@pytest.mark.parametrize(
    "role", ["ratio", {"ratio": "four"}, {"ratio": 1, "w": 2}, {"": 1}, [["ratio", 4]], {"r": True}]
)
def test_a_role_is_one_name_and_its_number(tmp_path, role):
    grid = write_grid(tmp_path / "g.yaml", base=TINY_BASE, runs=[{"seed": 0}, {"seed": 1, "role": role}])
    with pytest.raises(ConfigError, match=r"run 1 of .*g\.yaml: `role` must be one name and its number"):
        load_grid(grid)


def test_sweep_csv_has_role_columns_only_when_the_grid_gives_roles(tmp_path):
    from aligniform.sweep import write_summary

    results = {"knn_acc": 0.9, "uniformity": -3.0}
    for name, runs in {
        "plain": [{"seed": 0}, {"seed": 1}],
        "tagged": [{"seed": 0, "role": {"ratio": 0.25}}, {"seed": 1}],
    }.items():
        out = tmp_path / name
        grid = load_grid(write_grid(tmp_path / f"{name}.yaml", base=TINY_BASE, runs=runs))
        for run in grid:
            _finish(run, out, results)
        write_summary(grid, out)
        rows = read_sweep(out)
        if name == "plain":
            assert all("role" not in row and "role_value" not in row for row in rows)
        else:
            assert [(row["role"], row["role_value"]) for row in rows] == [("ratio", 0.25), ("", "")]
            assert [row["knn_acc"] for row in rows] == [0.9, 0.9]
