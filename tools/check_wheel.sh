#!/usr/bin/env bash
# The packaging check of CI: builds the sdist and the wheel (the wheel from the sdist, so a file missing from the
# sdist fails here), installs the wheel into clean venvs outside the repository -- no extras, then each extra alone --
# and runs tools/check_wheel_smoke.py in each from a folder outside the repository (core: every loss and metric runs
# with nothing but torch and numpy loaded; each extra: what it enables runs a tiny case; a missing extra is one line
# naming it).
#
# Usage: tools/check_wheel.sh [EXTRA ...]   (default: core and every extra; `all` is accepted too). `plots` is not
# in the default list because the core venv ends with it: after the core's checks it runs the line a missing extra
# prints, `pip install 'aligniform[plots]'`, and checks plots there (the wheel and that extra alone, as for the rest).
#
# Clean venvs and one torch: each checked venv sees torch==2.13.0 (never plain `torch`, which would pull a CUDA
# build) through a .pth line naming a base folder that holds torch and its own dependencies and nothing else. A
# checked venv is otherwise empty (no --system-site-packages, not the repository's .venv), so what it can import is
# torch with its dependencies plus what pip installs for the wheel and the extra: the same as a fresh venv where
# torch was installed first, without installing 900 MB once per venv. pip counts the base's torch as installed, so
# it never replaces it, and anything it installs goes into the checked venv only. The base is made of links to
# the files of torch's dependency closure in the repository's .venv (made by `make`; seconds) when that holds
# torch 2.13.0, else torch==2.13.0 is pip-installed into a base venv (minutes). TORCH_PYTHON names another python.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python3}"
checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(core train tensorboard torchmetrics lightning hf st)

work="$(mktemp -d "${TMPDIR:-/tmp}/aligniform-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
start=$SECONDS
step() { printf '== %s (%ds)\n' "$1" $((SECONDS - start)); }
# pip's output only when it fails (a quiet install still prints a warning per unreachable local index); no .pyc
# compiling of every installed file (most of the CPU time for the frameworks): the smoke tests import a few.
pip_install() { "$1/bin/pip" install -q --no-compile "${@:2}" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }; }

step "build the sdist and the wheel"
"$PY" -m venv "$work/build"
# The build backend goes into this venv once (--no-isolation) instead of into two throw-away build environments.
pip_install "$work/build" build "setuptools>=77" wheel
"$work/build/bin/python" -m build --no-isolation --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel="$(ls "$work"/dist/aligniform-*.whl)"
sdist="$(ls "$work"/dist/aligniform-*.tar.gz)"
# The shipped configs and the type marker are package data: they must be in both.
"$work/build/bin/python" - "$wheel" "$sdist" <<'EOF'
import sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1]).namelist()
sdist = tarfile.open(sys.argv[2]).getnames()
for needed in ("aligniform/py.typed", "aligniform/configs/mnist5k.yaml", "aligniform/configs/sweeps/figure5_digits.yaml"):
    assert needed in wheel, f"{needed} is not in the wheel"
    assert any(name.endswith("src/" + needed) for name in sdist), f"{needed} is not in the sdist"
print(f"wheel: {len(wheel)} files, sdist: {len(sdist)} entries; configs and py.typed in both")
EOF

torch_python="${TORCH_PYTHON:-$repo/.venv/bin/python}"
base_site="$work/torch-base"
if [ -x "$torch_python" ] && "$torch_python" "$repo/tools/check_wheel_base.py" 2.13.0 "$base_site"; then
  step "torch base: links to torch 2.13.0 and its dependencies in $("$torch_python" -c 'import sys; print(sys.prefix)')"
else
  step "torch base: a venv with torch==2.13.0"
  "$PY" -m venv "$work/base"
  pip_install "$work/base" torch==2.13.0
  base_site="$("$work/base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi

mkdir "$work/elsewhere"  # the smoke test runs here: no checkout on sys.path
# The smoke test's last line ("check_wheel_smoke: EXTRA: ok"), or all it printed when it fails (the frameworks log).
smoke() {
  (cd "$work/elsewhere" && "$1/bin/python" check_wheel_smoke.py "$2") >"$work/smoke.log" 2>&1 || { cat "$work/smoke.log"; exit 1; }
  tail -n 1 "$work/smoke.log"
}
cp "$repo/tools/check_wheel_smoke.py" "$work/elsewhere/"
for check in "${checks[@]}"; do
  step "venv: the wheel with $([ "$check" = core ] && echo "no extras" || echo "[$check]")"
  venv="$work/venv-$check"
  "$PY" -m venv "$venv"
  echo "$base_site" >"$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_torch_base.pth"
  if [ "$check" = core ]; then target="$wheel"; else target="$wheel[$check]"; fi
  pip_install "$venv" "$target"
  smoke "$venv" "$check"
  # After the core check, the install line that a missing extra prints must itself work in that venv.
  if [ "$check" = core ]; then
    step "the missing-extra line works: pip install 'aligniform[plots]' over the installed wheel"
    pip_install "$venv" 'aligniform[plots]'
    smoke "$venv" plots
  fi
  rm -rf "$venv"  # keep the disk use to one venv at a time
done
step "all checks passed"
