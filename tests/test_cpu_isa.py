"""The CPU kernels per instruction set (dcn.ops.cpu_isa): selection, fallbacks, and every
available path (generic, avx2, avx512) against MXNet's built-in operators and each other.

Shapes here are large enough for the vector code (8-channel runs, full GEMM tiles) and
odd enough for its edges (channel counts that are not multiples of 8, channel blocks of
the column order that end early, partial tiles in both GEMM dimensions)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import mxnet as mx

import dcn.ops
from dcn.ops import nd as dnd

ISAS = dcn.ops.available_cpu_isas()


def _cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return None


def _close(a, b, name, tol=1e-4):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, err_msg=name)


def _child(code, **env):
    import dcn as pkg
    e = dict(os.environ)
    e.pop('DCN_CPU_ISA', None)
    e.update(env)
    e['PYTHONPATH'] = os.pathsep.join([os.path.dirname(os.path.dirname(pkg.__file__)),
                                       e.get('PYTHONPATH', '')])
    e.setdefault('OMP_NUM_THREADS', '2')
    return subprocess.run([sys.executable, '-c', code], env=e, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=300)


# ------------------------------------------------------------------------ selection

def test_available_isas_follow_the_cpu_flags():
    assert ISAS[0] == 'generic' and set(ISAS) <= {'generic', 'avx2', 'avx512'}
    assert dcn.ops.cpu_isa() == ISAS[-1]  # the default: the best one
    flags = _cpu_flags()
    if flags is None or 'avx' not in flags and 'sse2' not in flags:
        pytest.skip('no x86 /proc/cpuinfo flags to compare with')
    assert ('avx2' in ISAS) == ({'avx2', 'fma'} <= flags)
    assert ('avx512' in ISAS) == ({'avx2', 'fma', 'avx512f', 'avx512vl'} <= flags)


def test_set_cpu_isa_switches_restores_and_rejects_bad_names():
    default = dcn.ops.cpu_isa()
    for isa in ISAS:
        with dcn.ops.using_cpu_isa(isa):
            assert dcn.ops.cpu_isa() == isa
        assert dcn.ops.cpu_isa() == default
    for bad in ('sse', 'AVX2', '', None, 2):
        with pytest.raises(ValueError, match='generic, avx2, avx512'):
            dcn.ops.set_cpu_isa(bad)
    assert dcn.ops.cpu_isa() == default
    assert dcn.ops.set_cpu_isa('auto') == default and dcn.ops.cpu_isa() == ISAS[-1]


CHILD = r'''
import numpy as np, mxnet as mx, dcn.ops
from dcn.ops import nd as dnd
print('ISA', dcn.ops.cpu_isa(), ','.join(dcn.ops.available_cpu_isas()))
rng = np.random.default_rng(0)
x = mx.nd.array(rng.standard_normal((1, 24, 9, 11)))
off = mx.nd.array(rng.standard_normal((1, 36, 9, 11)) * 2)
w = mx.nd.array(rng.standard_normal((10, 24, 3, 3)))
kw = dict(kernel=(3, 3), pad=(1, 1), num_filter=10, num_deformable_group=2, no_bias=True)
a = dnd.DeformableConvolution(x, off, w, **kw).asnumpy()
b = mx.nd.contrib.DeformableConvolution(x, off, w, **kw).asnumpy()
assert np.abs(a - b).max() < 1e-4 * np.abs(b).max()
try:
    dcn.ops.set_cpu_isa('avx512')
    print('SET avx512')
except RuntimeError as e:
    print('REFUSED', e)
'''


@pytest.mark.parametrize('isa', ISAS)
def test_environment_variable_selects_the_path(isa):
    res = _child(CHILD, DCN_CPU_ISA=isa)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    out = res.stdout.decode()
    assert 'ISA %s ' % isa in out
    assert res.stderr.decode().count('dcn.ops:') == 0  # a valid request: no message


def test_unknown_environment_value_falls_back_with_a_message():
    res = _child(CHILD, DCN_CPU_ISA='avx1024')
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert 'ISA %s ' % ISAS[-1] in res.stdout.decode()
    err = res.stderr.decode()
    assert 'DCN_CPU_ISA=avx1024 is not one of generic, avx2, avx512' in err and \
        'using %s' % ISAS[-1] in err


@pytest.mark.parametrize('cap', ['generic', 'avx2'])
def test_unavailable_isa_falls_back_or_is_refused(cap):
    """DCN_CPU_ISA_MAX makes the library treat the ISAs above it as absent, as on an older
    CPU: a request for one falls back (with a message) at load, and set_cpu_isa refuses it
    with an error; the kernels keep giving the built-in's results (no SIGILL, no garbage)."""
    if cap not in ISAS:
        pytest.skip('%s is not available here' % cap)
    res = _child(CHILD, DCN_CPU_ISA='avx512', DCN_CPU_ISA_MAX=cap)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    out, err = res.stdout.decode(), res.stderr.decode()
    allowed = ISAS[:ISAS.index(cap) + 1]
    assert 'ISA %s %s' % (cap, ','.join(allowed)) in out
    assert 'DCN_CPU_ISA=avx512 requested but DCN_CPU_ISA_MAX=%s excludes it; using %s' \
        % (cap, cap) in err
    assert 'REFUSED the avx512 kernels of dcn.ops cannot run here' in out


def _cpu_vendor():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('vendor_id'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def test_gemm_tile_default_switches_restores_and_rejects_bad_values():
    """The AVX-512 GEMM's tile: 12 x 32 on Intel CPUs (two 512-bit FMA units), 12 x 16
    elsewhere; set_gemm_tile switches and restores it and refuses other widths."""
    vendor = _cpu_vendor()
    with dcn.ops.using_gemm_tile('auto'):
        auto = dcn.ops.gemm_tile()
    if vendor is not None:
        assert auto == (32 if vendor == 'GenuineIntel' else 16)
    default = dcn.ops.gemm_tile()
    for t in dcn.ops.GEMM_TILES:
        with dcn.ops.using_gemm_tile(t):
            assert dcn.ops.gemm_tile() == t
        assert dcn.ops.gemm_tile() == default
    for bad in (8, 64, '32', None, True, 0):
        with pytest.raises(ValueError, match='16, 32 or auto'):
            dcn.ops.set_gemm_tile(bad)
    assert dcn.ops.gemm_tile() == default


TILE_CHILD = r'''
import dcn.ops
print('TILE', dcn.ops.gemm_tile())
'''


@pytest.mark.parametrize('value,expect', [('16', 16), ('32', 32), ('auto', None),
                                          ('48', None)])
def test_gemm_tile_environment_variable(value, expect):
    res = _child(TILE_CHILD, DCN_CPU_GEMM_TILE=value)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    with dcn.ops.using_gemm_tile('auto'):
        auto = dcn.ops.gemm_tile()
    assert 'TILE %d' % (expect or auto) in res.stdout.decode()
    err = res.stderr.decode()
    if value == '48':
        assert 'DCN_CPU_GEMM_TILE=48 is not one of 16, 32, auto; using %d' % auto in err
    else:
        assert 'dcn.ops:' not in err


@pytest.mark.skipif('avx512' not in ISAS, reason='needs a CPU with AVX-512')
@pytest.mark.parametrize('M,F', [(37, 29), (64, 96)])
def test_gemm_tiles_agree_forward_and_backward(M, F):
    """Both AVX-512 tiles against the built-in: output positions and filters that leave
    partial tiles of 16 and of 32 columns (and of 12 rows), forward and all gradients."""
    rng = np.random.default_rng(3)
    H, W = 7, M // 7 + 3
    x = mx.nd.array(rng.standard_normal((2, 40, H, W)))
    off = mx.nd.array(rng.standard_normal((2, 18, H, W)) * 1.5)
    w = mx.nd.array(rng.standard_normal((F, 40, 3, 3)) * 0.1)
    kw = dict(kernel=(3, 3), pad=(1, 1), num_filter=F, no_bias=True)
    og = mx.nd.array(rng.standard_normal((2, F, H, W)))

    def run(op):
        ins = [x.copy(), off.copy(), w.copy()]
        for a in ins:
            a.attach_grad()
        with mx.autograd.record():
            y = op(*ins, **kw)
        y.backward(og)
        return [y.asnumpy()] + [a.grad.asnumpy() for a in ins]

    want = run(mx.nd.contrib.DeformableConvolution)
    per_tile = []
    with dcn.ops.using_cpu_isa('avx512'):
        for t in dcn.ops.GEMM_TILES:
            with dcn.ops.using_gemm_tile(t):
                got = run(dnd.DeformableConvolution)
            for name, a, b in zip(('out', 'grad data', 'grad offset', 'grad weight'), got, want):
                _close(a, b, 'tile %d %s' % (t, name))
            per_tile.append(got[0])
    # every output sums its products in the same k order whatever the tile width, so the
    # forward does not depend on which CPU vendor picked the tile
    np.testing.assert_array_equal(per_tile[0], per_tile[1])


# --------------------------------------------------------- every path, same results

def _conv_case(rng, N, C, H, W, F, groups, dgroups, kernel, stride, dilate, pad, modulated,
               bias=True):
    kh, kw = kernel
    Ho = (H + 2 * pad[0] - dilate[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * pad[1] - dilate[1] * (kw - 1) - 1) // stride[1] + 1
    arrays = [rng.standard_normal((N, C, H, W)),
              rng.standard_normal((N, 2 * dgroups * kh * kw, Ho, Wo)) * 2.5]
    if modulated:
        arrays.append(rng.uniform(0, 1, (N, dgroups * kh * kw, Ho, Wo)))
    arrays.append(rng.standard_normal((F, C // groups, kh, kw)) * 0.1)
    if bias:
        arrays.append(rng.standard_normal(F))
    params = dict(kernel=kernel, stride=stride, dilate=dilate, pad=pad, num_filter=F,
                  num_group=groups, num_deformable_group=dgroups, no_bias=not bias)
    head = rng.standard_normal((N, F, Ho, Wo))
    return [a.astype(np.float32) for a in arrays], head.astype(np.float32), params


CONV_CASES = [
    # N, C, H, W, F, groups, dgroups, kernel, stride, dilate, pad
    (1, 64, 13, 17, 40, 1, 4, (3, 3), (1, 1), (2, 2), (2, 2)),     # res5-like, dilated
    (2, 200, 9, 10, 26, 1, 2, (3, 3), (1, 1), (1, 1), (1, 1)),     # channel blocks 128 + 72
    (1, 60, 11, 12, 42, 2, 3, (3, 3), (2, 2), (1, 1), (1, 1)),     # groups, runs of 10
    (2, 37, 8, 21, 13, 1, 1, (1, 3), (1, 1), (1, 2), (0, 2)),      # odd channels, 1 x 3
    (1, 16, 40, 41, 7, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1)),      # many positions, few filters
]


def _conv_run(op, arrays, head, params, backward):
    xs = [mx.nd.array(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = op(*xs, **params)
    if not backward:
        return [y.asnumpy()]
    y.backward(mx.nd.array(head))
    return [y.asnumpy()] + [x.grad.asnumpy() for x in xs]


@pytest.mark.parametrize('modulated', [False, True], ids=['dcn', 'mdcn'])
@pytest.mark.parametrize('case', range(len(CONV_CASES)))
def test_convolution_paths_agree_with_builtin(case, modulated):
    rng = np.random.default_rng(50 + case)
    arrays, head, params = _conv_case(rng, *CONV_CASES[case], modulated=modulated)
    name = 'ModulatedDeformableConvolution' if modulated else 'DeformableConvolution'
    ref = _conv_run(getattr(mx.nd.contrib, name), arrays, head, params, backward=not modulated)
    results = {}
    for isa in ISAS:
        with dcn.ops.using_cpu_isa(isa):
            results[isa] = _conv_run(getattr(dnd, name), arrays, head, params,
                                     backward=not modulated)
    for isa, res in results.items():
        for i, (a, b) in enumerate(zip(res, ref)):
            _close(a, b, '%s %s output/grad %d vs built-in' % (isa, name, i), 2e-4)
        for i, (a, b) in enumerate(zip(res, results['generic'])):
            _close(a, b, '%s %s output/grad %d vs generic' % (isa, name, i), 2e-5)


def test_modulated_convolution_gradients_agree_across_paths():
    rng = np.random.default_rng(7)
    arrays, head, params = _conv_case(rng, *CONV_CASES[1], modulated=True)
    results = {}
    for isa in ISAS:
        with dcn.ops.using_cpu_isa(isa):
            results[isa] = _conv_run(dnd.ModulatedDeformableConvolution, arrays, head, params,
                                     backward=True)
    for isa, res in results.items():
        for i, (a, b) in enumerate(zip(res, results['generic'])):
            _close(a, b, '%s output/grad %d vs generic' % (isa, i), 2e-5)


def test_nonfinite_input_spreads_as_in_the_builtin_on_every_path():
    """A NaN in the data reaches exactly the outputs it reaches in the built-in operator
    (which, like ours, multiplies every bilinear corner, also those of weight 0)."""
    rng = np.random.default_rng(3)
    arrays, _, params = _conv_case(rng, 1, 32, 10, 12, 16, 1, 1, (3, 3), (1, 1), (1, 1),
                                   (1, 1), False, bias=False)
    arrays[1] = np.round(arrays[1])
    arrays[1][0, :, :5] = 0  # integer offsets; zero in the top half
    arrays[0][0, 5, 4, 6] = np.nan
    arrays[0][0, 20, 9, 11] = np.inf
    ref = mx.nd.contrib.DeformableConvolution(*[mx.nd.array(a) for a in arrays], **params)
    ref = ref.asnumpy()
    assert 0 < np.isnan(ref).sum() < ref.size // 2
    for isa in ISAS:
        with dcn.ops.using_cpu_isa(isa):
            y = dnd.DeformableConvolution(*[mx.nd.array(a) for a in arrays], **params).asnumpy()
        np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ref), err_msg=isa)
        ok = np.isfinite(ref)
        _close(y[ok], ref[ok], '%s finite outputs' % isa)


def _rois(rng, R, H, W, stride):
    x1 = rng.uniform(-0.2 * W * stride, W * stride, R)
    y1 = rng.uniform(-0.2 * H * stride, H * stride, R)
    return np.stack([np.zeros(R), x1, y1, x1 + rng.uniform(4, 0.7 * W * stride, R),
                     y1 + rng.uniform(4, 0.7 * H * stride, R)], 1).astype(np.float32)


@pytest.mark.parametrize('C', [70, 264])
def test_fused_offset_branch_paths_agree_with_builtin(C):
    """Conv1x1DeformablePSROIPooling (vector row sums of 64 / 8 channels plus a tail)."""
    rng = np.random.default_rng(C)
    H, W, D, P = 12, 14, 6, 7
    data = mx.nd.array(rng.standard_normal((1, C, H, W)))
    weight = mx.nd.array(rng.standard_normal((D * P * P, C, 1, 1)) * 0.1)
    bias = mx.nd.array(rng.standard_normal(D * P * P))
    rois = mx.nd.array(_rois(rng, 30, H, W, 16))
    args = dict(spatial_scale=0.0625, output_dim=D, group_size=P, pooled_size=P, part_size=P,
                sample_per_part=4)
    conv = mx.nd.Convolution(data, weight, bias, kernel=(1, 1), num_filter=D * P * P)
    ref = mx.nd.contrib.DeformablePSROIPooling(conv, rois, no_trans=True, **args).asnumpy()
    for isa in ISAS:
        with dcn.ops.using_cpu_isa(isa):
            out = dnd.Conv1x1DeformablePSROIPooling(data, rois, weight, bias, **args).asnumpy()
        _close(out, ref, '%s fused offset branch' % isa)


def test_deformable_pooling_paths_agree_with_builtin():
    rng = np.random.default_rng(11)
    C, P, H, W, R = 5, 7, 10, 13, 24
    data = mx.nd.array(rng.standard_normal((1, C * P * P, H, W)))
    rois = mx.nd.array(_rois(rng, R, H, W, 16))
    trans = mx.nd.array(rng.standard_normal((R, 2 * C, P, P)) * 0.5)
    args = dict(spatial_scale=0.0625, output_dim=C, group_size=P, pooled_size=P, part_size=P,
                sample_per_part=4, trans_std=0.1)
    ref = mx.nd.contrib.DeformablePSROIPooling(data, rois, trans, **args).asnumpy()
    for isa in ISAS:
        with dcn.ops.using_cpu_isa(isa):
            out = dnd.DeformablePSROIPooling(data, rois, trans, **args).asnumpy()
        _close(out, ref, '%s deformable pooling' % isa)


def test_symbolic_executor_uses_the_selected_path():
    """Symbols bound before a switch run the newly selected kernels (nothing cached per ISA)."""
    rng = np.random.default_rng(5)
    arrays, _, params = _conv_case(rng, *CONV_CASES[0], modulated=False)
    names = ['data', 'offset', 'weight', 'bias']
    s = dcn.ops.sym.DeformableConvolution(*[mx.sym.var(n) for n in names], **params)
    exe = s.bind(mx.cpu(), {n: mx.nd.array(a) for n, a in zip(names, arrays)})
    ref = mx.nd.contrib.DeformableConvolution(*[mx.nd.array(a) for a in arrays],
                                              **params).asnumpy()
    for isa in ISAS:
        with dcn.ops.using_cpu_isa(isa):
            _close(exe.forward()[0].asnumpy(), ref, '%s executor' % isa)
