"""Deformable ConvNets operators for MXNet.

``import dcn.ops`` loads the compiled library ``libdcn_ops.so`` (built by ``./init.sh`` /
``operator_cxx/build.sh``) once and exposes, with the keyword arguments of the MXNet
``contrib`` operators:

- ``dcn.ops.nd.X`` (NDArray) and ``dcn.ops.sym.X`` (Symbol) for X in
  ``DeformableConvolution``, ``ModulatedDeformableConvolution``, ``DeformablePSROIPooling``,
  ``PSROIPooling``;
- ``dcn.ops.sym_ops(builtin=False)``: a namespace holding the four symbol functions, either
  these or MXNet's ``mx.sym.contrib`` ones;
- ``Conv1x1DeformablePSROIPooling`` (``nd`` and ``sym``; no built-in counterpart): the
  ``no_trans`` DeformablePSROIPooling of a 1x1 convolution computed without the
  convolution's output map (forward only, CPU), used by the CPU test networks;
- ``FPNROIPooling`` (``nd`` and ``sym``; the original FPN's ``fpn_roi_pooling``): each RoI
  pooled from its feature-pyramid level (``data_p2`` ...), plain (ROIPooling) or deformable
  (per-level offset FC ``offset_p2_weight`` / ``offset_p2_bias`` ...), CPU and GPU.
- ``cpu_isa()``, ``available_cpu_isas()``, ``set_cpu_isa(name)``, ``using_cpu_isa(name)``: the
  instruction set of the CPU kernels (``generic``, ``avx2``, ``avx512``; default: the best the
  CPU supports, or the environment variable ``DCN_CPU_ISA``); ``gemm_tile()``,
  ``set_gemm_tile(cols)``, ``using_gemm_tile(cols)``: the AVX-512 GEMM's tile width (16 or 32
  columns; default 32 on Intel CPUs, 16 elsewhere, or ``DCN_CPU_GEMM_TILE``).

Inputs may be float32, float64 or float16 (computed in float32). The operators are
registered in MXNet as ``dcn_<X>``. If the library is missing or was built
for another MXNet version, using any of them raises :class:`OperatorLibraryError` (asking to
run ``./init.sh``); ``sym_ops(builtin=True)`` works without the library.

Gradients are always written, never accumulated: MXNet's extension API does not pass the
gradient request, so ``grad_req='add'`` on an argument consumed directly by one of these
operators is not supported.
"""
import types

import mxnet as mx

from ._library import (OperatorLibraryError, load_library, is_loaded, LIB_PATH, OP_NAMES,
                       EXTRA_OP_NAMES, OP_PREFIX)
from . import nd
from . import sym
from .cpu_isa import (cpu_isa, available_cpu_isas, set_cpu_isa, using_cpu_isa, gemm_tile,
                      set_gemm_tile, using_gemm_tile, GEMM_TILES)

__all__ = ['nd', 'sym', 'sym_ops', 'load_library', 'is_loaded', 'OperatorLibraryError',
           'LIB_PATH', 'OP_NAMES', 'EXTRA_OP_NAMES', 'OP_PREFIX', 'cpu_isa',
           'available_cpu_isas', 'set_cpu_isa', 'using_cpu_isa', 'gemm_tile', 'set_gemm_tile',
           'using_gemm_tile', 'GEMM_TILES']

try:
    load_library()
except OperatorLibraryError:
    # Reported (with the fix) when one of the operators is first used.
    pass


def sym_ops(builtin=False):
    """Namespace of the four symbol functions: ours (``builtin=False``, loads the library,
    raising :class:`OperatorLibraryError` if it is unusable; with the fused
    ``Conv1x1DeformablePSROIPooling`` too) or ``mx.sym.contrib``'s."""
    if builtin:
        return types.SimpleNamespace(**{n: getattr(mx.sym.contrib, n) for n in OP_NAMES})
    load_library()
    return types.SimpleNamespace(**{n: getattr(sym, n) for n in OP_NAMES + EXTRA_OP_NAMES})
