"""CUDA implementation of the deformable operators (operator_cxx/cuda).

Three layers, each skipped with its reason when its tools are absent:

1. build: the CUDA sources compile with nvcc and the C entry points exist (needs nvcc);
2. emulation: the GPU code path (element functors, im2col chunking, cuBLAS GEMM arguments,
   atomics) compiled for the host (emu/dcn_cuda_emu.cc) matches our CPU operators through
   mxnet + dcn.ops on random configurations (needs a C++ compiler);
3. GPU: the CUDA kernels, called through the C entry points on PyTorch CUDA memory, match the
   CPU operators, torchvision.ops.deform_conv2d, and the CPU NMS (needs torch with a CUDA
   device and libdcn_cuda_kernels.so).
"""
import ctypes
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from _util import CUDA_DIR, cuda_emulation
sys.path.insert(0, CUDA_DIR)
import dcn_cuda_ctypes as dc  # noqa: E402

NVCC = shutil.which('nvcc') or next((p for p in ('/usr/local/cuda/bin/nvcc',) if os.path.exists(p)),
                                    None)
CODES = {np.dtype(np.float32): dc.F32, np.dtype(np.float64): dc.F64, np.dtype(np.float16): dc.F16}


# --------------------------------------------------------------------------------------------
# 1. build
# --------------------------------------------------------------------------------------------

@pytest.mark.skipif(NVCC is None, reason='nvcc not found: the CUDA sources cannot be compiled here')
def test_cuda_sources_compile_and_export_entry_points(tmp_path):
    env = dict(os.environ, NVCC=NVCC, DCN_CUDA_ARCHS=os.environ.get('DCN_TEST_CUDA_ARCH', '80'),
               DCN_CUDA_OUT_DIR=str(tmp_path))
    res = subprocess.run(['bash', os.path.join(CUDA_DIR, 'build_cuda.sh'), str(tmp_path / 'obj')],
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'warning' not in (res.stdout + res.stderr).lower(), res.stdout + res.stderr
    lib_path = str(tmp_path / 'libdcn_cuda_kernels.so')
    syms = subprocess.run(['nm', '-D', '--defined-only', lib_path], capture_output=True,
                          text=True).stdout
    for name in dc.ENTRY_POINTS:
        assert ' T %s\n' % name in syms + '\n', name
    # loads without a GPU; errors are reported, not raised
    lib = dc.load(lib_path)
    assert lib.dcn_cuda_device_count() >= 0
    assert lib.dcn_cuda_conv_workspace_bytes(ctypes.byref(dc.ConvGeom()), dc.F32) == -1
    assert b'geometry' in lib.dcn_cuda_last_error()
    g = dc.conv_geom(2, 8, 10, 12, 4, (3, 3), pad=(1, 1), im2col_step=1)
    assert lib.dcn_cuda_conv_workspace_bytes(ctypes.byref(g), dc.F32) >= 8 * 9 * 120 * 4
    if lib.dcn_cuda_device_count() == 0:
        keep, num = (ctypes.c_int * 2)(), ctypes.c_int(-1)
        boxes = np.zeros((2, 5), np.float32)
        assert lib.dcn_cuda_nms(boxes.ctypes.data, 2, 0.5, 0, keep, ctypes.byref(num)) != 0
        assert lib.dcn_cuda_last_error()


# --------------------------------------------------------------------------------------------
# memory back ends: host arrays (emulation) and PyTorch CUDA tensors
# --------------------------------------------------------------------------------------------

class HostMem:
    stream = None

    def put(self, a):
        return np.ascontiguousarray(a).copy()

    def full(self, shape, dtype, value):
        return np.full(shape, value, dtype=dtype)

    def ptr(self, x):
        return None if x is None else x.ctypes.data

    def get(self, x):
        return np.array(x)

    def sync(self):
        pass


class TorchMem:
    def __init__(self, torch):
        self.torch = torch
        self.stream = torch.cuda.current_stream().cuda_stream

    def put(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a).copy()).cuda()

    def full(self, shape, dtype, value):
        return self.torch.full(shape, value, dtype=getattr(self.torch, np.dtype(dtype).name),
                               device='cuda')

    def ptr(self, x):
        return None if x is None else x.data_ptr()

    def get(self, x):
        self.torch.cuda.synchronize()
        return x.cpu().numpy()

    def sync(self):
        self.torch.cuda.synchronize()


def run_conv(lib, mem, geom, arrays, head, want_grad=True):
    """arrays: dict data, offset, (mask), weight, (bias) of numpy arrays -> (out, grads dict)"""
    dtype = arrays['data'].dtype
    code = CODES[np.dtype(dtype)]
    d = {k: mem.put(v) for k, v in arrays.items()}
    ws_bytes = lib.dcn_cuda_conv_workspace_bytes(ctypes.byref(geom), code)
    assert ws_bytes > 0, lib.dcn_cuda_last_error()
    ws = mem.full((ws_bytes,), np.uint8, 0)
    out = mem.full(head.shape, dtype, np.nan)
    p = mem.ptr
    dc.check(lib, lib.dcn_cuda_conv_forward(
        ctypes.byref(geom), code, p(d['data']), p(d['offset']), p(d.get('mask')), p(d['weight']),
        p(d.get('bias')), p(out), p(ws), ws_bytes, mem.stream))
    if not want_grad:
        return mem.get(out), None
    grads = {k: mem.full(v.shape, dtype, np.nan) for k, v in arrays.items()}
    gh = mem.put(head)
    dc.check(lib, lib.dcn_cuda_conv_backward(
        ctypes.byref(geom), code, p(gh), p(d['data']), p(d['offset']), p(d.get('mask')),
        p(d['weight']), p(grads['data']), p(grads['offset']), p(grads.get('mask')),
        p(grads['weight']), p(grads.get('bias')), p(ws), ws_bytes, mem.stream))
    return mem.get(out), {k: mem.get(v) for k, v in grads.items()}


def run_pool(lib, mem, geom, arrays, head):
    """arrays: data, rois, (trans) -> (out, count, grads dict)"""
    dtype = arrays['data'].dtype
    code = CODES[np.dtype(dtype)]
    d = {k: mem.put(v) for k, v in arrays.items()}
    out = mem.full(head.shape, dtype, np.nan)
    count = mem.full(head.shape, dtype, np.nan) if geom.deformable else None
    p = mem.ptr
    dc.check(lib, lib.dcn_cuda_pool_forward(ctypes.byref(geom), code, p(d['data']), p(d['rois']),
                                            p(d.get('trans')), p(out), p(count), mem.stream))
    grads = {k: mem.full(arrays[k].shape, dtype, np.nan) for k in ('data', 'trans') if k in arrays}
    gh = mem.put(head)
    ws_bytes = lib.dcn_cuda_pool_workspace_bytes(ctypes.byref(geom), code)
    assert ws_bytes >= 0, lib.dcn_cuda_last_error()
    ws = mem.full((max(ws_bytes, 1),), np.uint8, 0) if ws_bytes else None
    dc.check(lib, lib.dcn_cuda_pool_backward(
        ctypes.byref(geom), code, p(gh), p(d['data']), p(d['rois']), p(d.get('trans')),
        p(count), p(grads['data']), p(grads.get('trans')), p(ws), ws_bytes, mem.stream))
    return (mem.get(out), None if count is None else mem.get(count),
            {k: mem.get(v) for k, v in grads.items()})


# --------------------------------------------------------------------------------------------
# CPU reference: our operators in the CPU build of MXNet
# --------------------------------------------------------------------------------------------

def _cpu_ops():
    try:
        import mxnet as mx
        import dcn.ops
        dcn.ops.load_library()
    except Exception as exc:  # noqa: BLE001 - any failure means no reference here
        pytest.skip('CPU reference operators unavailable (dcn.ops): %s' % exc)
    return mx, dcn.ops.nd


def _mx_run(mx, fn, arrays, head):
    xs = [mx.nd.array(a, dtype=a.dtype) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
    y.backward(mx.nd.array(head, dtype=head.dtype))
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def _out(n, k, p, s, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def conv_case(rng, dtype, modulated):
    groups, dgroups = int(rng.choice([1, 2])), int(rng.choice([1, 2]))
    C = int(rng.integers(1, 3)) * 2 * groups * dgroups // np.gcd(groups, dgroups)
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    N, H, W = int(rng.integers(1, 4)), int(rng.integers(4, 9)), int(rng.integers(4, 9))
    F = groups * int(rng.integers(1, 3))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dilate = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    Ho, Wo = _out(H, kh, pad[0], stride[0], dilate[0]), _out(W, kw, pad[1], stride[1], dilate[1])
    if Ho < 1 or Wo < 1:
        return conv_case(rng, dtype, modulated)
    no_bias = bool(rng.integers(0, 2))
    scale = float(rng.choice([0.5, 2.0, 6.0]))  # 6: many samples outside the map
    arrays = {'data': rng.standard_normal((N, C, H, W)).astype(dtype),
              'offset': (rng.standard_normal((N, 2 * dgroups * kh * kw, Ho, Wo)) * scale)
              .astype(dtype)}
    if modulated:
        arrays['mask'] = rng.uniform(0, 1, (N, dgroups * kh * kw, Ho, Wo)).astype(dtype)
    arrays['weight'] = rng.standard_normal((F, C // groups, kh, kw)).astype(dtype)
    if not no_bias:
        arrays['bias'] = rng.standard_normal((F,)).astype(dtype)
    head = rng.standard_normal((N, F, Ho, Wo)).astype(dtype)
    params = dict(kernel=(kh, kw), stride=stride, dilate=dilate, pad=pad, num_filter=F,
                  num_group=groups, num_deformable_group=dgroups, no_bias=no_bias)
    step = int(rng.choice([1, 2, 64]))  # chunks with a remainder when N == 3, step == 2
    geom = dc.conv_geom(N, C, H, W, F, (kh, kw), stride, pad, dilate, groups, dgroups,
                        modulated, step)
    if modulated:
        params['im2col_step'] = step
    return arrays, head, params, geom


def cpu_conv(arrays, head, params, modulated):
    mx, dnd = _cpu_ops()
    names = list(arrays)
    op = dnd.ModulatedDeformableConvolution if modulated else dnd.DeformableConvolution
    out, grads = _mx_run(mx, lambda *xs: op(**dict(zip(names, xs)), **params),
                         [arrays[k] for k in names], head)
    return out, dict(zip(names, grads))


def _close(a, b, dtype, what, scale=1.0):
    if np.dtype(dtype) == np.float16:
        # both sides compute in float32 from the same float16 inputs and round the result:
        # they differ by float32 summation order, i.e. at most about one float16 unit
        tol = 2e-3 * scale * max(1.0, float(np.abs(b.astype(np.float64)).max()))
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=0, atol=tol,
                                   err_msg=what)
        return
    tol = (2e-4 if dtype == np.float32 else 1e-10) * scale
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=what)


def check_conv_against_cpu(lib, mem, seed, dtype, modulated):
    rng = np.random.default_rng(seed)
    arrays, head, params, geom = conv_case(rng, dtype, modulated)
    out, grads = run_conv(lib, mem, geom, arrays, head)
    ref, ref_grads = cpu_conv(arrays, head, params, modulated)
    _close(out, ref, dtype, 'output %s' % params)
    for k in arrays:
        _close(grads[k], ref_grads[k], dtype, 'grad %s %s' % (k, params), 10.0)


def pool_case(rng, dtype, deformable):
    pooled = int(rng.integers(1, 4))
    group = pooled if not deformable else int(rng.integers(1, 4))
    output_dim = int(rng.integers(1, 4))
    N, H, W = int(rng.integers(1, 3)), int(rng.integers(4, 10)), int(rng.integers(4, 10))
    C = output_dim * group * group
    scale = float(rng.choice([0.5, 0.25, 1.0]))
    R = int(rng.integers(1, 6))
    x1 = rng.uniform(-10, W / scale, R)
    y1 = rng.uniform(-10, H / scale, R)
    rois = np.stack([rng.integers(0, N, R), x1, y1, x1 + rng.uniform(0, 30, R),
                     y1 + rng.uniform(0, 30, R)], 1).astype(dtype)
    arrays = {'data': rng.standard_normal((N, C, H, W)).astype(dtype), 'rois': rois}
    head = rng.standard_normal((R, output_dim, pooled, pooled)).astype(dtype)
    if not deformable:
        params = dict(spatial_scale=scale, output_dim=output_dim, pooled_size=pooled,
                      group_size=group)
        geom = dc.pool_geom(N, C, H, W, R, output_dim, pooled, scale, group, deformable=False)
        return arrays, head, params, geom
    part = int(rng.integers(1, 4))
    samples = int(rng.integers(1, 4))
    no_trans = bool(rng.integers(0, 2))
    ncls = int(rng.choice([1, output_dim])) if not no_trans else 1
    trans_std = 0.1
    params = dict(spatial_scale=scale, output_dim=output_dim, pooled_size=pooled,
                  group_size=group, part_size=part, sample_per_part=samples,
                  trans_std=trans_std, no_trans=no_trans)
    if not no_trans:
        arrays['trans'] = rng.standard_normal((R, 2 * ncls, part, part)).astype(dtype)
    geom = dc.pool_geom(N, C, H, W, R, output_dim, pooled, scale, group, part, samples,
                        trans_std, ncls, no_trans, True)
    return arrays, head, params, geom


def check_pool_against_cpu(lib, mem, seed, dtype, deformable):
    rng = np.random.default_rng(seed)
    arrays, head, params, geom = pool_case(rng, dtype, deformable)
    out, count, grads = run_pool(lib, mem, geom, arrays, head)
    mx, dnd = _cpu_ops()
    names = list(arrays)
    if deformable:
        op = dnd.DeformablePSROIPooling
        _, ref_count = dnd.DeformablePSROIPooling_with_count(
            *[mx.nd.array(arrays[k], dtype=dtype) for k in names], **params)
        np.testing.assert_array_equal(count, ref_count.asnumpy())
    else:
        op = dnd.PSROIPooling
    ref, ref_grads = _mx_run(mx, lambda *xs: op(*xs, **params), [arrays[k] for k in names], head)
    _close(out, ref, dtype, 'output %s' % params)
    for k, g in zip(names, ref_grads):
        if k in grads:
            _close(grads[k], g, dtype, 'grad %s %s' % (k, params), 10.0)


# --------------------------------------------------------------------------------------------
# 2. host emulation of the GPU code path
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def emu_lib():
    yield from cuda_emulation('dcn_cuda_emu_', '-O1')


DTYPES = pytest.mark.parametrize('dtype', [np.float32, np.float64, np.float16],
                                 ids=['f32', 'f64', 'f16'])


@pytest.mark.parametrize('modulated', [False, True], ids=['dcnv1', 'dcnv2'])
@DTYPES
def test_emulated_conv_matches_cpu(emu_lib, modulated, dtype):
    for seed in range(6):
        check_conv_against_cpu(emu_lib, HostMem(), seed, dtype, modulated)


@pytest.mark.parametrize('deformable', [False, True], ids=['psroi', 'dpsroi'])
@DTYPES
def test_emulated_pool_matches_cpu(emu_lib, deformable, dtype):
    for seed in range(8):
        check_pool_against_cpu(emu_lib, HostMem(), seed, dtype, deformable)


def test_emulated_half_conversions_are_numpys(emu_lib):
    """float16 <-> float32 of the host code (operator_cxx/dcn_half.h): every float16 value, and
    float32 values around every rounding boundary, convert as numpy converts them."""
    h = np.arange(65536, dtype=np.uint16)
    f = np.empty(65536, np.float32)
    emu_lib.dcn_emu_half_to_float(h.ctypes.data, f.ctypes.data, h.size)
    ref = h.view(np.float16).astype(np.float32)
    assert np.array_equal(f.view(np.uint32)[~np.isnan(ref)], ref.view(np.uint32)[~np.isnan(ref)])
    assert np.isnan(f[np.isnan(ref)]).all()
    # each float16 value, the float32 values half an ulp (float16) away, and their neighbours
    mid = (ref.astype(np.float64)[:-1] + ref.astype(np.float64)[1:]) / 2
    x = np.concatenate([ref, mid.astype(np.float32), np.nextafter(mid.astype(np.float32), 0),
                        np.nextafter(mid.astype(np.float32), np.inf),
                        np.random.default_rng(0).integers(0, 2 ** 32, 200000, dtype=np.uint64)
                        .astype(np.uint32).view(np.float32)])
    x = x[np.isfinite(x) | np.isinf(x)]
    out = np.empty(x.size, np.uint16)
    emu_lib.dcn_emu_float_to_half(x.ctypes.data, out.ctypes.data, x.size)
    with np.errstate(all='ignore'):
        expect = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(out[~nan], expect[~nan])
    assert np.isnan(out[nan].view(np.float16)).all()


@pytest.mark.parametrize('deformable', [False, True], ids=['psroi', 'dpsroi'])
def test_emulated_pool_roi_batch_index_rule(emu_lib, deformable):
    """Device side of the RoI rule: an index off an integer is truncated toward zero as in the
    CPU operators (and MXNet's built-ins); a RoI whose truncated index is outside the batch
    (or NaN) is never read from: zeros, no gradient (the operators refuse it beforehand)."""
    rng = np.random.default_rng(21)
    arrays, head, params, geom = pool_case(rng, np.float64, deformable)
    while geom.N < 2 or geom.R < 3:
        arrays, head, params, geom = pool_case(rng, np.float64, deformable)
    rois = arrays['rois']
    rois[:, 0] = np.where(rng.integers(0, 2, geom.R) == 1, rois[:, 0] + 1 / 1024,
                          np.maximum(rois[:, 0] - 1 / 1024, -1 / 1024))
    out, count, grads = run_pool(emu_lib, HostMem(), geom, arrays, head)
    mx, dnd = _cpu_ops()
    names = list(arrays)
    op = dnd.DeformablePSROIPooling if deformable else dnd.PSROIPooling
    ref, ref_grads = _mx_run(mx, lambda *xs: op(*xs, **params), [arrays[k] for k in names], head)
    _close(out, ref, np.float64, 'output, truncated batch indices')
    for k, g in zip(names, ref_grads):
        if k in grads:
            _close(grads[k], g, np.float64, 'grad %s, truncated batch indices' % k, 10.0)
    # outside the batch: rows 0 and 1 name no image
    bad = {k: v.copy() for k, v in arrays.items()}
    bad['rois'][0, 0] = geom.N
    bad['rois'][1, 0] = np.nan
    out_b, count_b, grads_b = run_pool(emu_lib, HostMem(), geom, bad, head)
    assert np.all(out_b[:2] == 0) and np.array_equal(out_b[2:], out[2:])
    if deformable:
        assert np.all(count_b[:2] == 0)
        if 'trans' in grads_b:
            assert np.all(grads_b['trans'][:2] == 0)
    head_valid = head.copy()
    head_valid[:2] = 0
    _, _, grads_v = run_pool(emu_lib, HostMem(), geom, arrays, head_valid)
    _close(grads_b['data'], grads_v['data'], np.float64, 'grad data without rows 0, 1')


def test_emulated_errors_are_reported(emu_lib):
    g = dc.conv_geom(1, 4, 6, 6, 2, (3, 3))
    g.Ho = 9  # inconsistent
    x = np.zeros(4096, np.float32)
    rc = emu_lib.dcn_cuda_conv_forward(ctypes.byref(g), dc.F32, *[x.ctypes.data] * 4, None,
                                       x.ctypes.data, x.ctypes.data, 16384, None)
    assert rc != 0 and b'output size' in emu_lib.dcn_cuda_last_error()
    g = dc.conv_geom(1, 4, 6, 6, 2, (3, 3))
    rc = emu_lib.dcn_cuda_conv_forward(ctypes.byref(g), dc.F32, *[x.ctypes.data] * 4, None,
                                       x.ctypes.data, x.ctypes.data, 16, None)
    assert rc != 0 and b'workspace' in emu_lib.dcn_cuda_last_error()


# --------------------------------------------------------------------------------------------
# 3. on a CUDA device
# --------------------------------------------------------------------------------------------

def _torch_cuda():
    try:
        import torch
    except ImportError:
        pytest.skip('GPU test: PyTorch is not installed (needed for CUDA memory)')
    if not torch.cuda.is_available():
        pytest.skip('GPU test: no CUDA device visible to PyTorch')
    return torch


@pytest.fixture(scope='module')
def gpu():
    torch = _torch_cuda()
    if not os.path.isfile(dc.KERNEL_LIB):
        pytest.skip('GPU test: %s is not built (run ./init.sh with nvcc)' % dc.KERNEL_LIB)
    lib = dc.load(dc.KERNEL_LIB)
    if lib.dcn_cuda_device_count() < 1:
        pytest.skip('GPU test: the kernel library sees no CUDA device')
    return lib, TorchMem(torch), torch


@pytest.mark.parametrize('modulated', [False, True], ids=['dcnv1', 'dcnv2'])
@DTYPES
def test_gpu_conv_matches_cpu(gpu, modulated, dtype):
    lib, mem, _ = gpu
    for seed in range(10):
        check_conv_against_cpu(lib, mem, 100 + seed, dtype, modulated)


@pytest.mark.parametrize('deformable', [False, True], ids=['psroi', 'dpsroi'])
@DTYPES
def test_gpu_pool_matches_cpu(gpu, deformable, dtype):
    lib, mem, _ = gpu
    for seed in range(10):
        check_pool_against_cpu(lib, mem, 200 + seed, dtype, deformable)


def _torchvision():
    try:
        import torchvision.ops
    except ImportError:
        pytest.skip('GPU test: torchvision is not installed')
    return torchvision.ops


@pytest.mark.parametrize('modulated', [False, True], ids=['dcnv1', 'dcnv2'])
def test_gpu_conv_matches_torchvision(gpu, modulated):
    """Against torchvision.ops.deform_conv2d (float64, CUDA).

    Offset layout: MXNet's DeformableConvolution and torchvision both store, for deformable
    group g and kernel tap t = i * kw + j, the pair (dy, dx) in channels 2 * (g * kh * kw + t)
    and 2 * (g * kh * kw + t) + 1, so the same offset tensor is passed to both. The sampling
    rules differ near the border: DCNv1 (MXNet) reads 0 outside [0, H) x [0, W) and replicates
    the last row/column inside it, torchvision (and DCNv2) interpolate against zero padding
    for positions in (-1, H) x (-1, W). So for DCNv1 every sample is placed strictly inside
    [0, H - 1) x [0, W - 1), where the definitions agree; DCNv2 uses unconstrained offsets.
    """
    lib, mem, torch = gpu
    tvops = _torchvision()
    rng = np.random.default_rng(7)
    N, C, H, W, F, k, dg = 2, 8, 9, 11, 6, 3, 2
    stride, pad, dil = (1, 2), (1, 1), (2, 1)
    Ho, Wo = _out(H, k, pad[0], stride[0], dil[0]), _out(W, k, pad[1], stride[1], dil[1])
    if modulated:
        offset = rng.standard_normal((N, 2 * dg * k * k, Ho, Wo)) * 3
    else:
        ti, tj = np.meshgrid(np.arange(k), np.arange(k), indexing='ij')
        base_h = (np.arange(Ho)[None, :, None] * stride[0] - pad[0] + ti.reshape(-1, 1, 1) * dil[0])
        base_w = (np.arange(Wo)[None, None, :] * stride[1] - pad[1] + tj.reshape(-1, 1, 1) * dil[1])
        offset = np.empty((N, dg, k * k, 2, Ho, Wo))
        offset[:, :, :, 0] = rng.uniform(0.01, H - 1.01, (N, dg, k * k, Ho, Wo)) - base_h
        offset[:, :, :, 1] = rng.uniform(0.01, W - 1.01, (N, dg, k * k, Ho, Wo)) - base_w
        offset = offset.reshape(N, 2 * dg * k * k, Ho, Wo)
    arrays = {'data': rng.standard_normal((N, C, H, W)), 'offset': offset}
    if modulated:
        arrays['mask'] = rng.uniform(0, 1, (N, dg * k * k, Ho, Wo))
    arrays['weight'] = rng.standard_normal((F, C, k, k))
    arrays['bias'] = rng.standard_normal((F,))
    head = rng.standard_normal((N, F, Ho, Wo))
    geom = dc.conv_geom(N, C, H, W, F, (k, k), stride, pad, dil, 1, dg, modulated, 1)
    out, grads = run_conv(lib, mem, geom, arrays, head)
    t = {key: torch.tensor(v, device='cuda', requires_grad=True) for key, v in arrays.items()}
    ref = tvops.deform_conv2d(t['data'], t['offset'], t['weight'], t['bias'], stride=stride,
                              padding=pad, dilation=dil, mask=t.get('mask'))
    ref.backward(torch.tensor(head, device='cuda'))
    np.testing.assert_allclose(out, ref.detach().cpu().numpy(), rtol=1e-9, atol=1e-9)
    for key in arrays:
        np.testing.assert_allclose(grads[key], t[key].grad.cpu().numpy(), rtol=1e-8, atol=1e-8,
                                   err_msg=key)


def test_gpu_nms_matches_cpu_nms(gpu):
    from dcn.nms import cpu_nms_wrapper, gpu_nms_wrapper
    rng = np.random.default_rng(3)
    for n in (1, 5, 63, 64, 65, 300, 2000):
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(2, 60, (n, 2))
        scores = rng.uniform(0, 1, (n, 1))
        scores[: n // 4] = 0.5  # ties: both in the original's order (argsort()[::-1])
        dets = np.hstack([xy, xy + wh, scores]).astype(np.float32)
        for thresh in (0.3, 0.5, 0.7):
            assert gpu_nms_wrapper(thresh, 0)(dets) == cpu_nms_wrapper(thresh)(dets), (n, thresh)
    assert gpu_nms_wrapper(0.5, 0)(np.zeros((0, 5), np.float32)) == []
