"""CUDA non-maximum suppression.

The IoU bitmask of every pair of score-sorted boxes is computed on the GPU (64 boxes per
block, one 64-bit word per box and block) and reduced greedily on the host. The kernel is
the ``dcn_cuda_nms`` entry point of ``lib/dcn/ops/libdcn_cuda_kernels.so``, built by
``operator_cxx/build.sh`` when nvcc is present. Importing this module raises ImportError
when that library is missing or no CUDA device is visible; ``dcn.nms.gpu_nms_wrapper``
turns that into a message suggesting ``cpu_nms_wrapper``.

Results equal ``cpu_nms``: same IoU formula (legacy +1 convention, float32, no fused
multiply-add), same ``IoU >= thresh`` rule, equal scores in the original's order (the boxes
are handed to the kernel sorted by ``scores.argsort()[::-1]``, which its stable sort keeps).
"""
import ctypes
import os

import numpy as np

LIB_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ops',
                        'libdcn_cuda_kernels.so')


def _load():
    if not os.path.isfile(LIB_PATH):
        raise ImportError('dcn.nms.gpu_nms: the CUDA kernel library %s is not built (it needs '
                          'nvcc: run ./init.sh on a machine with the CUDA toolkit)' % LIB_PATH)
    try:
        lib = ctypes.CDLL(LIB_PATH)
    except OSError as exc:
        raise ImportError('dcn.nms.gpu_nms: cannot load %s (%s)' % (LIB_PATH, exc)) from exc
    lib.dcn_cuda_nms.restype = ctypes.c_int
    lib.dcn_cuda_nms.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_int,
                                 ctypes.c_void_p, ctypes.c_void_p]
    lib.dcn_cuda_device_count.restype = ctypes.c_int
    lib.dcn_cuda_device_count.argtypes = []
    lib.dcn_cuda_last_error.restype = ctypes.c_char_p
    lib.dcn_cuda_last_error.argtypes = []
    if lib.dcn_cuda_device_count() <= 0:
        raise ImportError('dcn.nms.gpu_nms: no CUDA device is visible (or the NVIDIA driver is '
                          'missing or too old for %s)' % LIB_PATH)
    return lib


_lib = _load()


def device_count():
    """Number of visible CUDA devices."""
    return _lib.dcn_cuda_device_count()


def gpu_nms(dets, thresh, device_id=0):
    """Greedy NMS of ``dets`` ((N, 5) [x1, y1, x2, y2, score]) on GPU ``device_id``.

    Returns the kept indices into ``dets``, highest score first.
    """
    dets = np.ascontiguousarray(np.asarray(dets)[:, :5], dtype=np.float32)
    n = dets.shape[0]
    if n == 0:
        return []
    # the original's order of equal scores; the kernel's stable sort leaves it unchanged
    order = dets[:, 4].argsort()[::-1]
    dets = np.ascontiguousarray(dets[order])
    keep = np.empty(n, dtype=np.int32)
    num = ctypes.c_int(0)
    rc = _lib.dcn_cuda_nms(dets.ctypes.data, n, float(thresh), int(device_id), keep.ctypes.data,
                           ctypes.byref(num))
    if rc != 0:
        raise RuntimeError(_lib.dcn_cuda_last_error().decode())
    return [int(order[k]) for k in keep[:num.value]]
