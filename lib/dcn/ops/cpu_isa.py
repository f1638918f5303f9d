"""Which instruction set the CPU kernels of ``libdcn_ops.so`` use.

Three paths exist (``operator_cxx/dcn_cpu_isa.h``): ``generic`` (portable code with the BLAS
shipped with MXNet), ``avx2`` (AVX2 + FMA kernels) and ``avx512`` (AVX-512 F/VL kernels).
The library selects the best one the CPU supports when it is loaded, or the one named by the
environment variable ``DCN_CPU_ISA`` (``generic``, ``avx2``, ``avx512`` or ``auto``; a request
this CPU cannot run falls back to the best supported one below it, with a message on stderr).
:func:`set_cpu_isa` changes it at run time, e.g. to test or benchmark every path on one
machine.

The AVX-512 GEMM has two tile widths (12 x 16 and 12 x 32 outputs): the library picks 32 on
Intel CPUs (two 512-bit FMA units per core) and 16 elsewhere (e.g. Zen 4), or the one named
by ``DCN_CPU_GEMM_TILE`` (``16``, ``32`` or ``auto``); :func:`set_gemm_tile` changes it.
"""
import contextlib
import ctypes

from ._library import LIB_PATH, load_library

#: every ISA name the library knows, slowest first
ISA_NAMES = ('generic', 'avx2', 'avx512')

_lib = {}


def _clib():
    if 'lib' not in _lib:
        load_library()
        # the same path gives the handle of the library MXNet has loaded (same instance)
        lib = ctypes.CDLL(LIB_PATH)
        lib.dcn_cpu_isa_set.argtypes = [ctypes.c_char_p]
        lib.dcn_cpu_isa_set.restype = ctypes.c_int
        lib.dcn_cpu_isa_get.argtypes = []
        lib.dcn_cpu_isa_get.restype = ctypes.c_char_p
        lib.dcn_cpu_isa_supported.argtypes = [ctypes.c_char_p]
        lib.dcn_cpu_isa_supported.restype = ctypes.c_int
        lib.dcn_cpu_gemm_tile_set.argtypes = [ctypes.c_int]
        lib.dcn_cpu_gemm_tile_set.restype = ctypes.c_int
        lib.dcn_cpu_gemm_tile_get.argtypes = []
        lib.dcn_cpu_gemm_tile_get.restype = ctypes.c_int
        _lib['lib'] = lib
    return _lib['lib']


def cpu_isa():
    """Name of the ISA the CPU kernels use now: ``'generic'``, ``'avx2'`` or ``'avx512'``."""
    return _clib().dcn_cpu_isa_get().decode()


def available_cpu_isas():
    """The ISAs this CPU can run, slowest first (always starts with ``'generic'``)."""
    lib = _clib()
    return tuple(n for n in ISA_NAMES if lib.dcn_cpu_isa_supported(n.encode()) == 1)


def set_cpu_isa(name):
    """Select the CPU kernels: ``'generic'``, ``'avx2'``, ``'avx512'`` or ``'auto'`` (the best
    this CPU supports). Returns the previous selection.

    Waits for MXNet's pending operations first (the selection must not change while one of
    the operators runs). Raises ``ValueError`` for an unknown name and ``RuntimeError`` when
    this CPU cannot run the requested ISA (the selection is then unchanged).
    """
    import mxnet as mx
    if not isinstance(name, str) or name not in ISA_NAMES + ('auto',):
        raise ValueError('cpu ISA must be one of %s or auto, got %r' % (', '.join(ISA_NAMES), name))
    lib = _clib()
    previous = cpu_isa()
    mx.nd.waitall()
    rc = lib.dcn_cpu_isa_set(name.encode())
    if rc == -2:
        raise RuntimeError('the %s kernels of dcn.ops cannot run here: this CPU (or '
                           'DCN_CPU_ISA_MAX) allows %s' % (name, ', '.join(available_cpu_isas())))
    if rc != 0:
        raise ValueError('cpu ISA %r was rejected by %s' % (name, LIB_PATH))
    return previous


@contextlib.contextmanager
def _selected(setter, value):
    """Run the block with setter(value) in effect, then restore what setter returned."""
    previous = setter(value)
    try:
        yield
    finally:
        setter(previous)


def using_cpu_isa(name):
    """Context manager: run the block with the CPU kernels of ``name``, then restore."""
    return _selected(set_cpu_isa, name)


#: the tile widths of the AVX-512 GEMM
GEMM_TILES = (16, 32)


def gemm_tile():
    """Columns of the AVX-512 GEMM's tiles now: 16 or 32 (used while the ISA is avx512)."""
    return int(_clib().dcn_cpu_gemm_tile_get())


def set_gemm_tile(cols):
    """Select the AVX-512 GEMM tile width: 16, 32 or ``'auto'`` (32 on Intel CPUs, else 16).
    Returns the previous width. Waits for MXNet's pending operations first. Raises
    ``ValueError`` for another value."""
    import mxnet as mx
    if cols == 'auto':
        code = 0
    elif isinstance(cols, int) and not isinstance(cols, bool) and cols in GEMM_TILES:
        code = cols
    else:
        raise ValueError('gemm tile must be 16, 32 or auto, got %r' % (cols,))
    previous = gemm_tile()
    mx.nd.waitall()
    if _clib().dcn_cpu_gemm_tile_set(code) != 0:
        raise ValueError('gemm tile %r was rejected by %s' % (cols, LIB_PATH))
    return previous


def using_gemm_tile(cols):
    """Context manager: run the block with the AVX-512 GEMM tile width ``cols``, then restore."""
    return _selected(set_gemm_tile, cols)
