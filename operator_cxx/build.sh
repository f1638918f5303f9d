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
#              is built without AVX too).  The AVX2+FMA and AVX-512 kernels are
#              compiled besides, whatever DCN_MARCH is (function target attributes,
#              operator_cxx/dcn_simd.h), and chosen at run time (dcn_cpu_isa.h,
#              DCN_CPU_ISA).  Set DCN_MARCH=native for a build that only runs on the
#              build machine.  CXXFLAGS_EXTRA=-DDCN_NO_SIMD_KERNELS builds the
#              portable code only.
#   NVCC       CUDA compiler (default: nvcc on PATH).  When found and DCN_WITH_CUDA
#              is not 0, operator_cxx/cuda/build_cuda.sh also builds
#              lib/dcn/ops/libdcn_cuda_kernels.so (C entry points, no MXNet) and this
#              script links lib/dcn/ops/libdcn_ops_cuda.so (CPU and GPU registrations,
#              loaded instead of libdcn_ops.so by an MXNet built with CUDA).
#   DCN_WITH_CUDA  0: skip the CUDA libraries; 1: fail when they cannot be built;
#              unset: build them when nvcc is found, warn and go on if that fails.
#   DCN_CUDA_ARCHS  SM architectures for nvcc (see operator_cxx/cuda/build_cuda.sh)
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

CXXFLAGS=(-std=c++17 -O3 -fPIC -fopenmp "${MARCH_FLAGS[@]}" -fno-math-errno -Wno-psabi
          -Wall -Wno-unused-variable -Wno-unused-parameter -Wno-sign-compare
          -I"$HERE" -I"$MX_DIR/include" ${CXXFLAGS_EXTRA:-})
LDFLAGS=(-shared -fopenmp "$BLAS" -Wl,-rpath,"$MX_DIR" -Wl,--no-undefined -Wl,-z,defs)

BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dcn_ops_build.XXXXXX")"
trap 'rm -rf "$BUILD_DIR"' EXIT

OBJS=()
compile() {  # src obj
  "$CXX" "${CXXFLAGS[@]}" "${EXTRA_DEFS[@]}" -c "$1" -o "$2" || die "compiling $1 failed"
  OBJS+=("$2")
}

EXTRA_DEFS=()

# Sources (operator_cxx/README.md): per operator its arguments/shapes, CPU glue and GPU
# glue; the registration is compiled once per library (GPU functions with DCN_WITH_CUDA).
CPU_SOURCES=(dcn_attrs.cc dcn_ext.cc dcn_cpu_isa.cc dcn_conv.cc dcn_conv_cpu.cc dcn_pool.cc dcn_pool_cpu.cc dcn_fpn.cc dcn_fpn_cpu.cc)
GPU_SOURCES=(dcn_gpu.cc dcn_conv_gpu.cc dcn_pool_gpu.cc dcn_fpn_gpu.cc)
REGISTRATION_SOURCE=dcn_register.cc

pids=()
for src in "${CPU_SOURCES[@]}" "$REGISTRATION_SOURCE"; do
  compile "$HERE/$src" "$BUILD_DIR/${src%.cc}.o" &
  pids+=($!)
done
compile "$MX_DIR/src/lib_api.cc" "$BUILD_DIR/lib_api.o" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p" || die "compiling the operator sources failed"; done
COMMON_OBJS=("$BUILD_DIR/lib_api.o")
for src in "${CPU_SOURCES[@]}"; do COMMON_OBJS+=("$BUILD_DIR/${src%.cc}.o"); done
OBJS=("${COMMON_OBJS[@]}" "$BUILD_DIR/${REGISTRATION_SOURCE%.cc}.o")

mkdir -p "$OUT_DIR"
"$CXX" "${OBJS[@]}" "${LDFLAGS[@]}" -o "$BUILD_DIR/libdcn_ops.so" || die "linking failed"
mv -f "$BUILD_DIR/libdcn_ops.so" "$OUT"
printf '%s\n' "$MX_VERSION" > "$OUT_DIR/libdcn_ops.mxnet_version"
echo "operator_cxx/build.sh: built $OUT for mxnet $MX_VERSION"

# ---------------------------------------------------------------------------
# CUDA: libdcn_cuda_kernels.so and libdcn_ops_cuda.so (separate from the CPU library)
# ---------------------------------------------------------------------------
NVCC="${NVCC:-$(command -v nvcc || true)}"
CUDA_OUT="$OUT_DIR/libdcn_ops_cuda.so"
cuda_fail() {
  rm -f "$CUDA_OUT" "$OUT_DIR/libdcn_cuda_kernels.so"
  if [ "${DCN_WITH_CUDA:-}" = "1" ]; then die "CUDA build failed: $*"; fi
  echo "operator_cxx/build.sh: warning: CUDA build failed ($*); the CPU library is built" >&2
  exit 0
}
if [ "${DCN_WITH_CUDA:-}" = "0" ]; then
  echo "operator_cxx/build.sh: DCN_WITH_CUDA=0, CUDA libraries skipped"
  exit 0
fi
if [ -z "$NVCC" ]; then
  [ "${DCN_WITH_CUDA:-}" = "1" ] && die "DCN_WITH_CUDA=1 but nvcc was not found (set NVCC=...)"
  rm -f "$CUDA_OUT" "$OUT_DIR/libdcn_cuda_kernels.so"
  echo "operator_cxx/build.sh: nvcc not found, CPU-only build"
  exit 0
fi
# the toolkit root as nvcc reports it (nvcc may be a wrapper script)
CUDA_HOME="${CUDA_HOME:-$("$NVCC" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)}"
CUDA_LIBDIR="$CUDA_HOME/lib64"
[ -f "$CUDA_LIBDIR/libcudart_static.a" ] || CUDA_LIBDIR="$CUDA_HOME/targets/$(uname -m)-linux/lib"
[ -f "$CUDA_LIBDIR/libcudart_static.a" ] || cuda_fail "libcudart_static.a not found under $CUDA_HOME"
NVCC="$NVCC" bash "$HERE/cuda/build_cuda.sh" "$BUILD_DIR/cuda" &
pid_cu=$!
GPU_OBJS=("$BUILD_DIR/dcn_register_cuda.o")
"$CXX" "${CXXFLAGS[@]}" -DDCN_WITH_CUDA -c "$HERE/$REGISTRATION_SOURCE" -o "${GPU_OBJS[0]}" \
  || cuda_fail "compiling $REGISTRATION_SOURCE with DCN_WITH_CUDA"
for src in "${GPU_SOURCES[@]}"; do
  "$CXX" "${CXXFLAGS[@]}" -DDCN_WITH_CUDA -c "$HERE/$src" -o "$BUILD_DIR/${src%.cc}.o" \
    || cuda_fail "compiling $src"
  GPU_OBJS+=("$BUILD_DIR/${src%.cc}.o")
done
wait $pid_cu || cuda_fail "operator_cxx/cuda/build_cuda.sh"
"$CXX" "${COMMON_OBJS[@]}" "${GPU_OBJS[@]}" "$BUILD_DIR"/cuda/dcn_cuda_*.o \
  "${LDFLAGS[@]}" -L"$CUDA_LIBDIR" -lcudart_static -ldl -lrt -lpthread \
  -o "$BUILD_DIR/libdcn_ops_cuda.so" || cuda_fail "linking libdcn_ops_cuda.so"
mv -f "$BUILD_DIR/libdcn_ops_cuda.so" "$CUDA_OUT"
echo "operator_cxx/build.sh: built $CUDA_OUT (CPU + GPU) for mxnet $MX_VERSION"
