#!/usr/bin/env bash
# The locked dependencies for a machine without internet (a GPU box), in two steps:
#   on a machine with internet:  scripts/wheelhouse.sh build [DIR] [PYTHON_VERSION] [PLATFORM]
#   copy DIR and the repository over, then there:  scripts/wheelhouse.sh install [DIR] [VENV]
# build downloads binary wheels of requirements.lock (+ nvidia-ml-py for MLflow's GPU system
# metrics, + setuptools to install genlab itself) for the target's Python (default 3.11) and
# platform (default manylinux_2_28_x86_64), with `pip download --only-binary=:all:`: nothing is
# built from source there. install makes VENV (default .venv) with the target's python3 and
# installs from DIR alone (`--no-index`), then genlab in editable mode, as `make setup` does.
# Variables: PIP (pip of the building machine, default `python3 -m pip`), PYTHON (the target's
# interpreter for install, default python3), LOCK (default requirements.lock), EXTRA (the
# packages beyond the lock).
set -euo pipefail

cmd=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
lock=${LOCK:-$root/requirements.lock}
# shellcheck disable=SC2206
extra=(${EXTRA-nvidia-ml-py==13.615.71 setuptools>=68})

case "$cmd" in
  build)
    dir=${2:-$root/wheelhouse}; pyver=${3:-3.11}; platform=${4:-manylinux_2_28_x86_64}
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    ${PIP:-python3 -m pip} download --dest "$dir" --only-binary=:all: \
      --python-version "$pyver" --implementation cp --platform "$platform" \
      --platform manylinux2014_x86_64 --platform linux_x86_64 --platform any \
      -r "$lock" ${extra[@]+"${extra[@]}"}
    cp "$lock" "$dir/requirements.lock"
    echo "wheelhouse: $(ls "$dir"/*.whl | wc -l) wheels in $dir for CPython $pyver ($platform)"
    ;;
  install)
    dir=${2:-$root/wheelhouse}; venv=${3:-$root/.venv}
    [ -f "$dir/requirements.lock" ] || { echo "error: $dir has no requirements.lock:" \
      "build it with scripts/wheelhouse.sh build" >&2; exit 2; }
    ${PYTHON:-python3} -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-index --find-links "$dir" \
      -r "$dir/requirements.lock" ${extra[@]+"${extra[@]}"}
    "$venv/bin/python" -m pip install -q --no-index --find-links "$dir" \
      --no-build-isolation --no-deps -e "$root"
    "$venv/bin/python" - <<'PY'
import importlib.util

import genlab  # noqa: F401
if importlib.util.find_spec("torch"):
    import torch
    print("torch", torch.__version__, "CUDA devices:", torch.cuda.device_count())
print("installed from the wheelhouse")
PY
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
