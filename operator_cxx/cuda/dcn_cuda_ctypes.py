"""ctypes binding of dcn_cuda_api.h (libdcn_cuda_kernels.so, or the host emulation
libdcn_cuda_emu.so built from emu/dcn_cuda_emu.cc).

Used by tests/test_cuda_*.py and benchmarks/bench_cuda.py. Pointers are plain integers
(numpy ``arr.ctypes.data`` for the emulation, ``tensor.data_ptr()`` for CUDA memory).
"""
import ctypes
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KERNEL_LIB = os.path.join(ROOT, 'lib', 'dcn', 'ops', 'libdcn_cuda_kernels.so')

F32, F64, F16 = 0, 1, 2
ENTRY_POINTS = ('dcn_cuda_conv_workspace_bytes', 'dcn_cuda_conv_forward', 'dcn_cuda_conv_backward',
                'dcn_cuda_pool_forward', 'dcn_cuda_pool_workspace_bytes',
                'dcn_cuda_pool_backward', 'dcn_cuda_fpn_workspace_bytes',
                'dcn_cuda_fpn_forward', 'dcn_cuda_fpn_backward', 'dcn_cuda_zero',
                'dcn_cuda_copy_to_host',
                'dcn_cuda_nms', 'dcn_cuda_device_count', 'dcn_cuda_set_allow_tf32',
                'dcn_cuda_last_error')


class ConvGeom(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in
                'N C H W F Ho Wo kh kw sh sw ph pw dh dw groups dgroups modulated '
                'im2col_step'.split()]


class PoolGeom(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_int) for n in
                 'N C H W R output_dim group pooled part samples num_classes no_trans '
                 'deformable'.split()] +
                [('spatial_scale', ctypes.c_double), ('trans_std', ctypes.c_double)])


FPN_MAX_LEVELS = 8


class FpnGeom(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_int) for n in ('levels', 'N', 'C')] +
                [('H', ctypes.c_int * FPN_MAX_LEVELS), ('W', ctypes.c_int * FPN_MAX_LEVELS),
                 ('spatial_scale', ctypes.c_double * FPN_MAX_LEVELS)] +
                [(n, ctypes.c_int) for n in ('R', 'pooled', 'samples', 'deformable')] +
                [('trans_std', ctypes.c_double)])


_P = ctypes.c_void_p
_SIGS = {
    'dcn_cuda_conv_workspace_bytes': (ctypes.c_int64, [ctypes.POINTER(ConvGeom), ctypes.c_int]),
    'dcn_cuda_conv_forward': (ctypes.c_int, [ctypes.POINTER(ConvGeom), ctypes.c_int] + [_P] * 7 +
                              [ctypes.c_int64, _P]),
    'dcn_cuda_conv_backward': (ctypes.c_int, [ctypes.POINTER(ConvGeom), ctypes.c_int] +
                               [_P] * 11 + [ctypes.c_int64, _P]),
    'dcn_cuda_pool_forward': (ctypes.c_int, [ctypes.POINTER(PoolGeom), ctypes.c_int] + [_P] * 6),
    'dcn_cuda_pool_workspace_bytes': (ctypes.c_int64, [ctypes.POINTER(PoolGeom), ctypes.c_int]),
    'dcn_cuda_pool_backward': (ctypes.c_int, [ctypes.POINTER(PoolGeom), ctypes.c_int] +
                               [_P] * 8 + [ctypes.c_int64, _P]),
    'dcn_cuda_fpn_workspace_bytes': (ctypes.c_int64, [ctypes.POINTER(FpnGeom), ctypes.c_int,
                                                       ctypes.c_int]),
    'dcn_cuda_fpn_forward': (ctypes.c_int, [ctypes.POINTER(FpnGeom), ctypes.c_int] + [_P] * 5 +
                             [_P, ctypes.c_int64, _P]),
    'dcn_cuda_fpn_backward': (ctypes.c_int, [ctypes.POINTER(FpnGeom), ctypes.c_int] + [_P] * 8 +
                              [_P, ctypes.c_int64, _P]),
    'dcn_cuda_zero': (ctypes.c_int, [_P, ctypes.c_int64, _P]),
    'dcn_cuda_copy_to_host': (ctypes.c_int, [_P, _P, ctypes.c_int64, _P]),
    'dcn_cuda_nms': (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_double, ctypes.c_int, _P, _P]),
    'dcn_cuda_device_count': (ctypes.c_int, []),
    'dcn_cuda_set_allow_tf32': (ctypes.c_int, [ctypes.c_int]),
    'dcn_cuda_last_error': (ctypes.c_char_p, []),
    'dcn_emu_half_to_float': (None, [_P, _P, ctypes.c_int64]),
    'dcn_emu_float_to_half': (None, [_P, _P, ctypes.c_int64]),
}


class CudaKernelError(RuntimeError):
    """A C entry point returned an error code."""


def load(path=KERNEL_LIB):
    """Load the library and declare the signatures of the entry points it has."""
    lib = ctypes.CDLL(path)
    for name, (res, args) in _SIGS.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype, fn.argtypes = res, args
    return lib


def check(lib, rc):
    if rc != 0:
        raise CudaKernelError(lib.dcn_cuda_last_error().decode())


def conv_geom(N, C, H, W, F, kernel, stride=(1, 1), pad=(0, 0), dilate=(1, 1), num_group=1,
              num_deformable_group=1, modulated=False, im2col_step=64):
    kh, kw = kernel

    def out(n, k, p, s, d):
        return (n + 2 * p - d * (k - 1) - 1) // s + 1
    return ConvGeom(N, C, H, W, F, out(H, kh, pad[0], stride[0], dilate[0]),
                    out(W, kw, pad[1], stride[1], dilate[1]), kh, kw, stride[0], stride[1],
                    pad[0], pad[1], dilate[0], dilate[1], num_group, num_deformable_group,
                    int(modulated), im2col_step)


def pool_geom(N, C, H, W, R, output_dim, pooled_size, spatial_scale, group_size=0, part_size=0,
              sample_per_part=1, trans_std=0.0, num_classes=1, no_trans=True, deformable=True):
    group = group_size or pooled_size
    return PoolGeom(N, C, H, W, R, output_dim, group, pooled_size, part_size or pooled_size,
                    sample_per_part, num_classes, int(no_trans), int(deformable),
                    spatial_scale, trans_std)


def fpn_geom(N, C, hw, strides, R, pooled=7, samples=4, deformable=False, trans_std=0.1):
    """FpnGeom of maps of sizes hw[l] = (H, W) with the given strides."""
    g = FpnGeom()
    g.levels, g.N, g.C = len(strides), N, C
    for l, ((h, w), s) in enumerate(zip(hw, strides)):
        g.H[l], g.W[l], g.spatial_scale[l] = h, w, 1.0 / s
    g.R, g.pooled, g.samples, g.deformable, g.trans_std = R, pooled, samples, int(deformable), \
        trans_std
    return g


def pointer_array(ptrs):
    """A C array of pointers (host memory) for the per-level arguments; None stays NULL."""
    if ptrs is None:
        return None
    return ctypes.cast((_P * len(ptrs))(*ptrs), _P)
