"""The GPU code path of FPNROIPooling (operator_cxx/cuda/dcn_cuda_fpn.h), compiled for the
host by the emulation of the CUDA back end (cuda/emu/dcn_cuda_emu.cc), against the CPU
operator (dcn.ops.nd.FPNROIPooling, itself checked against MXNet's built-ins in
test_ops_fpn.py): forward and the gradients of every input, float32 / float64 / float16.
On a machine with a GPU, tests/test_cuda_kernels.py builds the CUDA library itself."""
import sys

import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd

import dcn.ops

from _util import CUDA_DIR, cuda_emulation
sys.path.insert(0, CUDA_DIR)
import dcn_cuda_ctypes as dc  # noqa: E402

CODES = {np.float32: dc.F32, np.float64: dc.F64, np.float16: dc.F16}


@pytest.fixture(scope='module')
def emu():
    yield from cuda_emulation('dcn_cuda_fpn_emu_', '-O2')


def make_case(rng, dtype, deformable, strides=(4, 8, 16, 32), C=None, R=8, N=2, P=7):
    C = C or (16 if deformable else 5)
    hw = [(384 // s, 448 // s) for s in strides]
    maps = [rng.randn(N, C, h, w).astype(dtype) for h, w in hw]
    sides = np.exp(rng.uniform(np.log(20), np.log(700), R))
    x1 = rng.uniform(-10, 300, R)
    y1 = rng.uniform(-10, 250, R)
    ar = rng.uniform(0.6, 1.6, R)
    rois = np.stack([rng.randint(N, size=R), x1, y1, x1 + sides * ar, y1 + sides / ar],
                    1).astype(dtype)
    weights = [(rng.randn(2 * P * P, P * P * C) * 0.01).astype(dtype) for _ in strides]
    biases = [(rng.randn(2 * P * P) * 0.5).astype(dtype) for _ in strides]
    head = rng.randn(R, C, P, P).astype(dtype)
    return hw, maps, rois, weights, biases, head


def cpu_reference(case, dtype, deformable, strides, P, samples):
    hw, maps, rois, weights, biases, head = case
    kw = {}
    for l in range(len(strides)):
        kw['data_p%d' % (2 + l)] = mx.nd.array(maps[l], dtype=dtype)
        if deformable:
            kw['offset_p%d_weight' % (2 + l)] = mx.nd.array(weights[l], dtype=dtype)
            kw['offset_p%d_bias' % (2 + l)] = mx.nd.array(biases[l], dtype=dtype)
    for v in kw.values():
        v.attach_grad()
    with autograd.record():
        out = dcn.ops.nd.FPNROIPooling(rois=mx.nd.array(rois, dtype=dtype), feat_strides=strides,
                                       with_deformable=deformable, output_dim=maps[0].shape[1],
                                       pooled_size=P, sample_per_part=samples, **kw)
        (out * mx.nd.array(head, dtype=dtype)).sum().backward()
    grads = {k: v.grad.asnumpy() for k, v in kw.items()}
    return out.asnumpy(), grads


def run_emu(lib, case, dtype, deformable, strides, P, samples):
    hw, maps, rois, weights, biases, head = case
    L = len(strides)
    N, C = maps[0].shape[:2]
    # trans_std: the operator's float32 parameter (as MXNet's DeformablePSROIPooling)
    g = dc.fpn_geom(N, C, hw, strides, len(rois), P, samples, deformable,
                    float(np.float32(0.1)))
    code = CODES[dtype]
    out = np.zeros((len(rois), C, P, P), dtype)
    wts = [np.ascontiguousarray(w) for w in weights]
    bss = [np.ascontiguousarray(b) for b in biases]
    wp = dc.pointer_array([w.ctypes.data for w in wts]) if deformable else None
    bp = dc.pointer_array([b.ctypes.data for b in bss]) if deformable else None
    dp = dc.pointer_array([m.ctypes.data for m in maps])
    nbytes = lib.dcn_cuda_fpn_workspace_bytes(g, code, 0)
    assert nbytes > 0
    ws = np.zeros(nbytes, np.uint8)
    dc.check(lib, lib.dcn_cuda_fpn_forward(g, code, dp, wp, bp, rois.ctypes.data, out.ctypes.data,
                                           ws.ctypes.data, nbytes, None))
    gd = [np.full(m.shape, 7, dtype) for m in maps]  # garbage: must be overwritten
    gw = [np.full(w.shape, 7, dtype) for w in weights]
    gb = [np.full(b.shape, 7, dtype) for b in biases]
    nbytes = lib.dcn_cuda_fpn_workspace_bytes(g, code, 1)
    ws = np.zeros(nbytes, np.uint8)
    dc.check(lib, lib.dcn_cuda_fpn_backward(
        g, code, head.ctypes.data, dp, wp, bp, rois.ctypes.data,
        dc.pointer_array([x.ctypes.data for x in gd]),
        dc.pointer_array([x.ctypes.data for x in gw]) if deformable else None,
        dc.pointer_array([x.ctypes.data for x in gb]) if deformable else None,
        ws.ctypes.data, nbytes, None))
    grads = {'data_p%d' % (2 + l): gd[l] for l in range(L)}
    if deformable:
        for l in range(L):
            grads['offset_p%d_weight' % (2 + l)] = gw[l]
            grads['offset_p%d_bias' % (2 + l)] = gb[l]
    return out, grads


@pytest.mark.parametrize('deformable', [False, True], ids=['plain', 'deformable'])
@pytest.mark.parametrize('dtype', [np.float32, np.float64, np.float16], ids=['f32', 'f64', 'f16'])
def test_emulated_fpn_matches_cpu(emu, deformable, dtype):
    strides, P, samples = (4, 8, 16, 32), (7 if deformable else 5), (2 if deformable else 4)
    for seed in range(2):
        rng = np.random.RandomState(seed + 10 * deformable)
        case = make_case(rng, dtype, deformable, strides, P=P, R=6 if deformable else 8)
        out_c, grads_c = cpu_reference(case, dtype, deformable, strides, P, samples)
        out_e, grads_e = run_emu(emu, case, dtype, deformable, strides, P, samples)
        tol = {np.float32: 2e-5, np.float64: 1e-10, np.float16: 4e-3}[dtype]
        np.testing.assert_allclose(out_e.astype(np.float64), out_c, rtol=tol, atol=tol)
        for k in grads_c:
            ref = grads_c[k].astype(np.float64)
            scale = max(1.0, np.abs(ref).max())
            np.testing.assert_allclose(grads_e[k].astype(np.float64), ref, rtol=tol,
                                       atol=tol * scale, err_msg=k)


def test_emulated_fpn_three_levels_and_empty_levels(emu):
    # levels follow the geometry (3 strides: clip to P4); RoIs on P2 and P4 only
    strides = (4, 8, 16)
    rng = np.random.RandomState(4)
    case = list(make_case(rng, np.float64, True, strides, R=4))
    case[2] = np.array([[0, 3, 4, 40, 50], [1, 0, 0, 600, 500], [0, 10, 20, 30, 40],
                        [1, 5, 5, 900, 700]], np.float64)
    out_c, grads_c = cpu_reference(case, np.float64, True, strides, 7, 4)
    out_e, grads_e = run_emu(emu, case, np.float64, True, strides, 7, 4)
    np.testing.assert_allclose(out_e, out_c, rtol=1e-10, atol=1e-10)
    for k in grads_c:
        np.testing.assert_allclose(grads_e[k], grads_c[k], rtol=1e-10, atol=1e-10, err_msg=k)
    assert not grads_e['data_p3'].any() and not grads_e['offset_p3_weight'].any()
    assert grads_e['offset_p4_weight'].any()


def test_emulated_fpn_invalid_roi_is_never_read(emu):
    # a RoI outside the batch or of negative area pools to zeros without gradient (the
    # operator rejects both on the host before calling the kernels)
    rng = np.random.RandomState(2)
    case = list(make_case(rng, np.float32, False, R=3))
    case[2] = np.array([[5, 0, 0, 50, 50], [0, 60, 0, 10, 40], [0, 0, 0, 30, 30]], np.float32)
    out, grads = run_emu(emu, case, np.float32, False, (4, 8, 16, 32), 7, 4)
    assert not out[:2].any() and out[2].any()
    head_valid = case[5].copy()
    case[5] = head_valid * np.array([0, 0, 1], np.float32)[:, None, None, None]
    _, grads_valid = run_emu(emu, case, np.float32, False, (4, 8, 16, 32), 7, 4)
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads_valid[k])


def test_emulated_fpn_errors(emu):
    g = dc.fpn_geom(1, 4, [(8, 8)] * 8, (4,) * 8, 2)
    g.levels = 9  # more than DCN_FPN_MAX_LEVELS
    assert emu.dcn_cuda_fpn_workspace_bytes(g, dc.F32, 0) == -1
    assert b'levels' in emu.dcn_cuda_last_error()
    g = dc.fpn_geom(1, 4, [(8, 8)], (4,), 2, deformable=True)
    x = np.zeros(64, np.float32)
    rc = emu.dcn_cuda_fpn_forward(g, dc.F32, dc.pointer_array([x.ctypes.data]), None, None,
                                  x.ctypes.data, x.ctypes.data, x.ctypes.data, 0, None)
    assert rc != 0 and b'null pointer' in emu.dcn_cuda_last_error()
