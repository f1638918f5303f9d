#!/usr/bin/env bash
# Compile the CUDA sources of operator_cxx/cuda/src and link
# lib/dcn/ops/libdcn_cuda_kernels.so (C entry points of dcn_cuda_api.h: the
# kernels and GPU NMS, no MXNet dependency).
#
#   operator_cxx/cuda/build_cuda.sh [OBJ_DIR]
#
# The objects stay in OBJ_DIR (default: a temporary folder, removed) so that
# operator_cxx/build.sh can link them into libdcn_ops_cuda.so as well.
# Environment:
#   NVCC              CUDA compiler (default: nvcc on PATH, else $CUDA_HOME/bin/nvcc)
#   DCN_CUDA_ARCHS    SM architectures, e.g. "80 90" (default: 75 80 86 89 90, all
#                     that nvcc lists of those); PTX of the highest is embedded too
#   DCN_CUDA_OUT_DIR  where the library goes (default: lib/dcn/ops)
#   DCN_NVCC_THREADS  nvcc --threads per source (default 1; sources build in parallel)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$(dirname "$HERE")")"
OUT_DIR="${DCN_CUDA_OUT_DIR:-$ROOT/lib/dcn/ops}"
die() { echo "operator_cxx/cuda/build_cuda.sh: error: $*" >&2; exit 1; }

NVCC="${NVCC:-$(command -v nvcc || true)}"
if [ -z "$NVCC" ] && [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then NVCC="$CUDA_HOME/bin/nvcc"; fi
[ -n "$NVCC" ] || die "nvcc not found (set NVCC=/path/to/nvcc)"

if [ $# -ge 1 ]; then
  OBJ_DIR="$1"; mkdir -p "$OBJ_DIR"
else
  OBJ_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dcn_cuda_build.XXXXXX")"
  trap 'rm -rf "$OBJ_DIR"' EXIT
fi

SUPPORTED="$("$NVCC" --list-gpu-arch 2>/dev/null | sed -n 's/^compute_//p' | tr '\n' ' ')"
WANT="${DCN_CUDA_ARCHS:-75 80 86 89 90}"
GENCODE=()
LAST=""
for a in $WANT; do
  if [ -n "$SUPPORTED" ] && ! grep -qw "$a" <<<"$SUPPORTED"; then
    echo "operator_cxx/cuda/build_cuda.sh: sm_$a not supported by $NVCC, skipped"
    continue
  fi
  GENCODE+=(-gencode "arch=compute_$a,code=sm_$a")
  LAST="$a"
done
[ -n "$LAST" ] || die "none of the architectures '$WANT' is supported by $NVCC"
GENCODE+=(-gencode "arch=compute_$LAST,code=compute_$LAST")

NVCCFLAGS=(-std=c++17 -O3 -Xcompiler -fPIC,-Wall -Xcudafe --display_error_number
           --threads "${DCN_NVCC_THREADS:-1}" "${GENCODE[@]}" -I"$HERE")

pids=()
for cu in "$HERE"/src/*.cu; do
  "$NVCC" "${NVCCFLAGS[@]}" -c "$cu" -o "$OBJ_DIR/$(basename "$cu" .cu).o" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "nvcc failed (see above)"; done

mkdir -p "$OUT_DIR"
"$NVCC" -shared "${GENCODE[@]}" "$OBJ_DIR"/*.o -o "$OBJ_DIR/libdcn_cuda_kernels.so" -ldl \
  || die "linking libdcn_cuda_kernels.so failed"
mv -f "$OBJ_DIR/libdcn_cuda_kernels.so" "$OUT_DIR/libdcn_cuda_kernels.so"
echo "operator_cxx/cuda/build_cuda.sh: built $OUT_DIR/libdcn_cuda_kernels.so (sm: ${WANT})"
