#!/usr/bin/env bash
# Build lib/dcn/ops/libdcn_ops.so against the installed MXNet wheel.
#
#   PYTHON=/path/to/python operator_cxx/build.sh
#
# Environment:
#   PYTHON     interpreter whose mxnet package is built against (default: python)
#   CXX        C++ compiler (default: g++)
#   DCN_MARCH  value of -march (default: x86-64-v2 on x86-64, i.e. SSE4.2 without
#              AVX, safe on any x86-64 CPU of the last decade; MXNet's own wheel
#              is built without AVX too).  Set DCN_MARCH=native for a build that
#              only runs on the build machine.
#   NVCC       CUDA compiler; when found and operator_cxx/cuda/*.cu exist, they
#              are compiled with -DDCN_WITH_CUDA and linked into the library.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-python}"
CXX="${CXX:-g++}"
OUT_DIR="$ROOT/lib/dcn/ops"
OUT="$OUT_DIR/libdcn_ops.so"

die() { echo "operator_cxx/build.sh: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "python interpreter '$PYTHON' not found (set PYTHON=...)"
command -v "$CXX" >/dev/null 2>&1 || die "C++ compiler '$CXX' not found (set CXX=...)"

# Locate the mxnet package without importing it (importing is slow and not needed).
MX_DIR="$("$PYTHON" -c 'import importlib.util, os, sys
spec = importlib.util.find_spec("mxnet")
sys.exit("mxnet is not installed for " + sys.executable) if spec is None else print(os.path.dirname(spec.origin))')" \
  || die "cannot locate the mxnet package with $PYTHON"
MX_VERSION="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("mxnet"))' 2>/dev/null)" \
  || die "cannot read the installed mxnet version with $PYTHON"

[ -f "$MX_DIR/include/mxnet/lib_api.h" ] || die "$MX_DIR/include/mxnet/lib_api.h not found: this mxnet wheel has no extension-library API"
[ -f "$MX_DIR/src/lib_api.cc" ] || die "$MX_DIR/src/lib_api.cc not found in the mxnet wheel"
BLAS="$MX_DIR/libopenblas.so.0"
[ -f "$BLAS" ] || die "$BLAS not found (the BLAS shipped with the mxnet wheel)"

MARCH_FLAGS=()
case "$(uname -m)" in
  x86_64|amd64) MARCH_FLAGS=(-march="${DCN_MARCH:-x86-64-v2}" -mtune=generic) ;;
  *) [ -n "${DCN_MARCH:-}" ] && MARCH_FLAGS=(-march="$DCN_MARCH") ;;
esac

CXXFLAGS=(-std=c++17 -O3 -fPIC -fopenmp "${MARCH_FLAGS[@]}" -fno-math-errno
          -Wall -Wno-unused-variable -Wno-unused-parameter -Wno-sign-compare
          -I"$HERE" -I"$MX_DIR/include")
LDFLAGS=(-shared -fopenmp "$BLAS" -Wl,-rpath,"$MX_DIR" -Wl,--no-undefined -Wl,-z,defs)

BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dcn_ops_build.XXXXXX")"
trap 'rm -rf "$BUILD_DIR"' EXIT

OBJS=()
compile() {  # src obj
  "$CXX" "${CXXFLAGS[@]}" "${EXTRA_DEFS[@]}" -c "$1" -o "$2" || die "compiling $1 failed"
  OBJS+=("$2")
}

EXTRA_DEFS=()
CUDA_SRCS=()
if [ -d "$HERE/cuda" ]; then
  shopt -s nullglob
  CUDA_SRCS=("$HERE"/cuda/*.cu)
  shopt -u nullglob
fi
NVCC="${NVCC:-$(command -v nvcc || true)}"
if [ ${#CUDA_SRCS[@]} -gt 0 ] && [ -n "$NVCC" ]; then
  CUDA_HOME="${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}"
  EXTRA_DEFS=(-DDCN_WITH_CUDA -I"$CUDA_HOME/include")
  for cu in "${CUDA_SRCS[@]}"; do
    obj="$BUILD_DIR/$(basename "$cu" .cu).cu.o"
    "$NVCC" -std=c++17 -O3 -Xcompiler -fPIC -DDCN_WITH_CUDA ${NVCC_FLAGS:-} -I"$HERE" -I"$MX_DIR/include" \
      -c "$cu" -o "$obj" || die "compiling $cu failed"
    OBJS+=("$obj")
  done
  LDFLAGS+=(-L"$CUDA_HOME/lib64" -lcudart)
  echo "operator_cxx/build.sh: CUDA sources compiled with $NVCC"
elif [ ${#CUDA_SRCS[@]} -gt 0 ]; then
  echo "operator_cxx/build.sh: nvcc not found, building CPU-only (operator_cxx/cuda skipped)"
fi

compile "$HERE/dcn_ops.cc" "$BUILD_DIR/dcn_ops.o" &
pid1=$!
compile "$MX_DIR/src/lib_api.cc" "$BUILD_DIR/lib_api.o" &
pid2=$!
wait $pid1 || die "compiling dcn_ops.cc failed"
wait $pid2 || die "compiling lib_api.cc failed"
OBJS+=("$BUILD_DIR/dcn_ops.o" "$BUILD_DIR/lib_api.o")

mkdir -p "$OUT_DIR"
"$CXX" "${OBJS[@]}" "${LDFLAGS[@]}" -o "$BUILD_DIR/libdcn_ops.so" || die "linking failed"
mv -f "$BUILD_DIR/libdcn_ops.so" "$OUT"
printf '%s\n' "$MX_VERSION" > "$OUT_DIR/libdcn_ops.mxnet_version"
echo "operator_cxx/build.sh: built $OUT for mxnet $MX_VERSION"
