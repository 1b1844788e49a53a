#!/usr/bin/env bash
# The wheels the GPU suite needs on a lent GPU machine, downloaded here (where the package registry is reachable).
#
# Such a machine has its own python3 (3.12, x86-64) with torch, pytest, scikit-learn, tqdm, PyYAML and TensorBoard,
# but no kornia and no network. This script downloads kornia and kornia_rs (kornia's compiled part), at the
# versions this checkout's venv uses, into .gpu-wheels/ (ignored by git; the device tool carries it when asked),
# then prints the command that runs the suite there. See docs/benchmarks.md, "GPU suite".
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
kornia=$(version kornia)
kornia_rs=$(version kornia_rs)
mkdir -p .gpu-wheels
rm -f .gpu-wheels/kornia-*.whl .gpu-wheels/kornia_rs-*.whl  # this script's own files: one version of each
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --dest .gpu-wheels "kornia==$kornia" "kornia_rs==$kornia_rs"
ls -l .gpu-wheels
cat <<'COMMAND'

On the GPU machine (device tool: carry [".gpu-wheels"]), from the repository root:

set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu-wheels/*.whl && export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 && python3 benchmarks/gpu_suite.py --out $OUT/suite.json 2>&1 | tee $OUT/suite.log
COMMAND
