#!/usr/bin/env bash
# Set up everything this repository needs, from a fresh clone:
#   1. a Python 3.11 virtual environment in .venv with the pinned wheels of requirements.txt;
#   2. the package `dcn` (lib/) installed in editable mode, its Cython modules compiled;
#   3. the operator library lib/dcn/ops/libdcn_ops.so, built against the installed MXNet
#      (CUDA kernels too when nvcc is present and DCN_WITH_CUDA is not 0).
# Idempotent: running it again reinstalls nothing that is up to date (the compiled parts are
# rebuilt, in seconds). Any failing step stops it
# with a message naming the step.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="${DCN_VENV:-$ROOT/.venv}"
STEP="start"
trap 'echo "init.sh: FAILED during: $STEP (see the messages above)" >&2' ERR

log() { echo "[init.sh] $*"; }

STEP="finding Python 3.11"
PY_SYS="${PYTHON_BIN:-}"
if [ -z "$PY_SYS" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && \
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      PY_SYS="$(command -v "$cand")"; break
    fi
  done
fi
if [ -z "$PY_SYS" ]; then
  echo "init.sh: Python 3.11 is required (mxnet 1.9.1 wheels); set PYTHON_BIN=/path/to/python3.11" >&2
  exit 1
fi

STEP="creating the virtual environment $VENV"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  log "creating $VENV with $PY_SYS"
  rm -rf "$VENV"
  "$PY_SYS" -m venv "$VENV"
fi
PY="$VENV/bin/python"

STEP="installing pinned wheels (requirements.txt)"
REQ_HASH="$(sha256sum requirements.txt | cut -d' ' -f1)"
STAMP="$VENV/.dcn-requirements.sha256"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQ_HASH" ] || \
   ! "$PY" -c 'import mxnet, numpy, cv2, pycocotools, yaml, easydict, Cython, pytest' 2>/dev/null; then
  log "installing requirements"
  "$PY" -m pip install --disable-pip-version-check -q -r requirements.txt
  echo "$REQ_HASH" > "$STAMP"
else
  log "requirements up to date"
fi
"$PY" - <<'PYEOF'
import numpy, mxnet
assert mxnet.__version__ == '1.9.1', 'mxnet 1.9.1 expected, found %s' % mxnet.__version__
assert numpy.__version__.startswith('1.23'), 'numpy 1.23.x expected, found %s' % numpy.__version__
PYEOF

STEP="building the Cython modules of lib/dcn"
log "building Cython modules"
(cd lib && "$PY" setup.py -q build_ext --inplace)

STEP="installing the package dcn (lib/) in editable mode"
if ! "$PY" -c 'import dcn, os, sys; sys.exit(0 if os.path.realpath(dcn.__path__[0]) == os.path.realpath("lib/dcn") else 1)' 2>/dev/null; then
  log "installing lib/ (editable)"
  "$PY" -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e lib
fi

STEP="building the operator library (operator_cxx/build.sh)"
log "building operators"
PYTHON="$PY" bash operator_cxx/build.sh

STEP="checking the installation"
"$PY" -c 'import dcn.ops, dcn.bbox, dcn.nms; print("[init.sh] ok: dcn", dcn.__file__)'
trap - ERR
log "done. Use $VENV/bin/python (or: source $VENV/bin/activate)."
