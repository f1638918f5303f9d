"""Position-sensitive RoI pooling operators (dcn.ops) against MXNet's built-in ones."""
import os

import numpy as np
import pytest
import mxnet as mx

import dcn.ops
from dcn.ops import nd as dnd, sym as dsym, _library


def _rois(rng, R, N, H, W, stride):
    """RoIs in image coordinates; a share of them partly or fully outside the image."""
    img_h, img_w = H * stride, W * stride
    x1 = rng.uniform(-0.3 * img_w, img_w, R)
    y1 = rng.uniform(-0.3 * img_h, img_h, R)
    x2 = x1 + rng.uniform(0, 0.8 * img_w, R)
    y2 = y1 + rng.uniform(0, 0.8 * img_h, R)
    b = rng.integers(0, N, R)
    return np.stack([b, x1, y1, x2, y2], axis=1).astype(np.float32)


def _run(fn, arrays, head, grad_idx):
    xs = [mx.nd.array(a, dtype=a.dtype) for a in arrays]
    for i in grad_idx:
        xs[i].attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
    y.backward(mx.nd.array(head, dtype=head.dtype))
    return y.asnumpy(), [xs[i].grad.asnumpy() for i in grad_idx]


def _close(a, b, name, tol=1e-4):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, err_msg=name)


CASES = [
    # output_dim, group, pooled, part, samples, trans_std, num_classes, no_trans
    (3, 3, 3, 3, 2, 0.1, 3, False),       # class-specific offsets (R-FCN cls)
    (4, 3, 3, 3, 4, 0.1, 1, False),       # class-agnostic offsets (R-FCN bbox)
    (6, 1, 4, 4, 2, 0.2, 1, False),       # group 1 (deformable Faster R-CNN RoI pooling)
    (4, 2, 4, 2, 3, 0.3, 2, False),       # part_size != pooled_size
    (4, 3, 3, 3, 4, 0.0, 1, True),        # no_trans (offset branch)
    (2, 7, 7, 7, 4, 0.1, 1, False),       # R-FCN geometry
    # group 1, one offset class, output_dim >= 8: the channels-last kernels
    (16, 1, 4, 4, 2, 0.2, 1, False),      # deformable Faster R-CNN RoI pooling
    (20, 1, 4, 2, 3, 0.3, 1, False),      # part_size != pooled_size, partial vectors
    (24, 1, 3, 3, 4, 0.0, 1, True),       # its no_trans offset branch
]


@pytest.mark.parametrize('case', range(len(CASES)))
def test_deformable_psroi_matches_builtin(case):
    out_dim, group, pooled, part, samples, trans_std, ncls, no_trans = CASES[case]
    rng = np.random.default_rng(case)
    N, H, W, R = 2, 9, 11, 7
    data = rng.standard_normal((N, out_dim * group * group, H, W)).astype(np.float32)
    rois = _rois(rng, R, N, H, W, 8)
    params = dict(spatial_scale=0.125, output_dim=out_dim, group_size=group, pooled_size=pooled,
                  part_size=part, sample_per_part=samples, trans_std=trans_std,
                  no_trans=no_trans)
    head = rng.standard_normal((R, out_dim, pooled, pooled)).astype(np.float32)
    arrays = [data, rois]
    grad_idx = [0]
    if not no_trans:
        arrays.append(rng.standard_normal((R, 2 * ncls, part, part)).astype(np.float32))
        grad_idx.append(2)
    ours, g_ours = _run(lambda *x: dnd.DeformablePSROIPooling(*x, **params), arrays, head,
                        grad_idx)
    ref, g_ref = _run(lambda *x: mx.nd.contrib.DeformablePSROIPooling(*x, **params), arrays,
                      head, grad_idx)
    assert ours.shape == (R, out_dim, pooled, pooled)
    _close(ours, ref, 'output')
    for n, a, b in zip(['data', 'trans'], g_ours, g_ref):
        _close(a, b, 'grad ' + n)


def test_deformable_psroi_float64_and_top_count():
    rng = np.random.default_rng(11)
    N, H, W, R = 1, 6, 7, 5
    data = rng.standard_normal((N, 2 * 4, H, W))
    rois = _rois(rng, R, N, H, W, 16).astype(np.float64)
    rois[0] = [0, -200, -200, -100, -100]          # fully outside: every bin empty
    trans = rng.standard_normal((R, 2, 2, 2))
    params = dict(spatial_scale=1.0 / 16, output_dim=2, group_size=2, pooled_size=2,
                  sample_per_part=3, trans_std=0.1)
    out, count = dnd.DeformablePSROIPooling_with_count(
        mx.nd.array(data, dtype=np.float64), mx.nd.array(rois, dtype=np.float64),
        mx.nd.array(trans, dtype=np.float64), **params)
    assert out.dtype == np.float64
    ref = mx.nd.contrib.DeformablePSROIPooling(mx.nd.array(data), mx.nd.array(rois),
                                               mx.nd.array(trans), **params)
    _close(out.asnumpy(), ref.asnumpy(), 'float64 output')
    c = count.asnumpy()
    assert np.all(c[0] == 0) and np.all(out.asnumpy()[0] == 0)
    assert c.max() <= 9 and c.min() >= 0 and np.all(c == np.round(c))


def test_deformable_psroi_channels_last_finite_differences_float64():
    """Group 1 with one offset class (the channels-last kernels), float64: data and trans
    gradients against central differences; a RoI outside the map (empty bins), a RoI whose
    top gradient is zero, and sample counts that are the same for every channel."""
    rng = np.random.default_rng(21)
    N, D, H, W, R, P = 2, 9, 6, 7, 4, 3
    data = rng.standard_normal((N, D, H, W))
    rois = _rois(rng, R, N, H, W, 8).astype(np.float64)
    rois[1] = [1, -300, -300, -200, -200]
    trans = rng.standard_normal((R, 2, P, P))
    head = rng.standard_normal((R, D, P, P))
    head[2] = 0
    params = dict(spatial_scale=0.125, output_dim=D, group_size=1, pooled_size=P, part_size=P,
                  sample_per_part=2, trans_std=0.1)

    def f(x, t):
        return dnd.DeformablePSROIPooling(mx.nd.array(x, dtype=np.float64),
                                          mx.nd.array(rois, dtype=np.float64),
                                          mx.nd.array(t, dtype=np.float64), **params)

    out, g = _run(lambda *x: dnd.DeformablePSROIPooling(*x, **params), [data, rois, trans],
                  head, [0, 2])
    assert out.dtype == np.float64 and np.all(out[1] == 0) and np.abs(out).max() > 0.1
    _, count = dnd.DeformablePSROIPooling_with_count(
        mx.nd.array(data, dtype=np.float64), mx.nd.array(rois, dtype=np.float64),
        mx.nd.array(trans, dtype=np.float64), **params)
    c = count.asnumpy()
    assert np.all(c == c[:, :1]) and np.all(c[1] == 0) and c.max() <= 4 and c.max() > 0
    eps = 1e-6
    for which, arr, grad in (('data', data, g[0]), ('trans', trans, g[1])):
        assert np.abs(grad).max() > 1e-3, which
        for j in rng.choice(arr.size, 25, replace=False):
            plus, minus = arr.copy(), arr.copy()
            plus.flat[j] += eps
            minus.flat[j] -= eps
            args_p = (plus, trans) if which == 'data' else (data, plus)
            args_m = (minus, trans) if which == 'data' else (data, minus)
            numeric = float(((f(*args_p).asnumpy() - f(*args_m).asnumpy()) * head).sum()) / (2 * eps)
            assert abs(numeric - grad.flat[j]) <= 1e-6 * max(1.0, abs(numeric)), (which, j)
    # the RoI with a zero top gradient contributes no offset gradient
    assert np.all(g[1][2] == 0) and np.all(g[1][1] == 0)


@pytest.mark.parametrize('seed,group', [(0, 3), (1, 2), (2, 1)])
def test_psroi_matches_builtin(seed, group):
    rng = np.random.default_rng(50 + seed)
    N, H, W, R, out_dim, pooled = 2, 10, 12, 9, 3, 3
    data = rng.standard_normal((N, out_dim * group * group, H, W)).astype(np.float32)
    rois = _rois(rng, R, N, H, W, 4)
    params = dict(spatial_scale=0.25, output_dim=out_dim, pooled_size=pooled, group_size=group)
    head = rng.standard_normal((R, out_dim, pooled, pooled)).astype(np.float32)
    ours, g_ours = _run(lambda *x: dnd.PSROIPooling(*x, **params), [data, rois], head, [0])
    ref, g_ref = _run(lambda *x: mx.nd.contrib.PSROIPooling(*x, **params), [data, rois], head,
                      [0])
    _close(ours, ref, 'output')
    _close(g_ours[0], g_ref[0], 'grad data')


def test_rfcn_head_symbol_matches_builtin():
    """R-FCN deformable head (offset pooling then trans pooling) through simple_bind."""
    def head(ops):
        feat = mx.sym.var('feat')
        rois = mx.sym.var('rois')
        off_feat = mx.sym.Convolution(feat, num_filter=2 * 3 * 3 * 2, kernel=(1, 1),
                                      name='offset_conv')
        off = ops.DeformablePSROIPooling(data=off_feat, rois=rois, group_size=3, pooled_size=3,
                                         sample_per_part=2, no_trans=True, part_size=3,
                                         output_dim=2 * 2, spatial_scale=0.0625, name='off_t')
        cls = ops.DeformablePSROIPooling(data=feat, rois=rois, trans=off, group_size=3,
                                         pooled_size=3, sample_per_part=2, part_size=3,
                                         output_dim=2, trans_std=0.1, spatial_scale=0.0625,
                                         name='cls_pool')
        return mx.sym.mean(cls, axis=(2, 3), name='score')

    ours, ref = head(dcn.ops.sym_ops()), head(dcn.ops.sym_ops(builtin=True))
    assert ours.list_arguments() == ref.list_arguments()
    assert ours.get_internals()['cls_pool_output'] is not None
    rng = np.random.default_rng(9)
    shapes = dict(feat=(1, 18, 8, 10), rois=(6, 5))
    vals = dict(feat=rng.standard_normal((1, 18, 8, 10)), rois=_rois(rng, 6, 1, 8, 10, 16),
                offset_conv_weight=rng.standard_normal((36, 18, 1, 1)) * 0.3,
                offset_conv_bias=rng.standard_normal(36) * 0.3)
    res = []
    for s in (ours, ref):
        ex = s.simple_bind(mx.cpu(), grad_req={'feat': 'write', 'rois': 'null',
                                               'offset_conv_weight': 'write',
                                               'offset_conv_bias': 'write'}, **shapes)
        for k, v in vals.items():
            ex.arg_dict[k][:] = v
        y = ex.forward(is_train=True)[0]
        ex.backward(mx.nd.ones_like(y))
        res.append([y.asnumpy()] + [ex.grad_dict[k].asnumpy() for k in
                                    ('feat', 'offset_conv_weight', 'offset_conv_bias')])
    for a, b, n in zip(res[0], res[1], ['out', 'feat', 'w', 'b']):
        _close(a, b, n)


# ------------------------------------------------- fused 1x1 convolution + no_trans pooling

FUSED_CASES = [
    # N, C, H, W, output_dim, group, pooled, samples, R, dtype
    (1, 16, 10, 12, 4, 7, 7, 4, 20, np.float32),    # R-FCN offset branch geometry
    (2, 33, 9, 17, 3, 3, 3, 2, 40, np.float32),     # batch of 2, group 3
    (2, 20, 8, 11, 5, 1, 4, 3, 25, np.float32),     # group 1
    (2, 12, 7, 9, 2, 2, 4, 4, 30, np.float64),      # group < pooled, float64
]


@pytest.mark.parametrize('case', range(len(FUSED_CASES)))
def test_fused_conv1x1_pooling_equals_convolution_then_pooling(case):
    N, C, H, W, D, G, P, S, R, dt = FUSED_CASES[case]
    rng = np.random.default_rng(100 + case)
    data = mx.nd.array(rng.standard_normal((N, C, H, W)), dtype=dt)
    weight = mx.nd.array(rng.standard_normal((D * G * G, C, 1, 1)) * 0.3, dtype=dt)
    bias = mx.nd.array(rng.standard_normal(D * G * G), dtype=dt)
    rois_np = _rois(rng, R, N, H, W, 8).astype(dt)
    rois_np[0, 1:] = [-400, -400, -300, -300]  # entirely outside the map: every bin is 0
    rois = mx.nd.array(rois_np, dtype=dt)
    args = dict(spatial_scale=0.125, output_dim=D, group_size=G, pooled_size=P, part_size=P,
                sample_per_part=S)
    conv = mx.nd.Convolution(data, weight, bias, kernel=(1, 1), num_filter=D * G * G)
    ref = mx.nd.contrib.DeformablePSROIPooling(conv, rois, no_trans=True, **args).asnumpy()
    ours_unfused = dnd.DeformablePSROIPooling(conv, rois, no_trans=True, **args).asnumpy()
    fused = dnd.Conv1x1DeformablePSROIPooling(data, rois, weight, bias, **args)
    assert fused.shape == (R, D, P, P) and fused.dtype == dt
    fused = fused.asnumpy()
    assert np.all(fused[0] == 0)
    assert np.abs(ref[1:]).max() > 0.1
    tol = 1e-4 if dt == np.float32 else 1e-10
    _close(fused, ref, 'fused vs built-in', tol)
    _close(fused, ours_unfused, 'fused vs unfused', tol)


def test_fused_conv1x1_pooling_symbol_infers_parameters():
    feat, rois = mx.sym.var('feat'), mx.sym.var('rois')
    s = dsym.Conv1x1DeformablePSROIPooling(data=feat, rois=rois, name='off', spatial_scale=0.0625,
                                           output_dim=4, group_size=7, pooled_size=7,
                                           sample_per_part=4)
    assert s.list_arguments() == ['feat', 'rois', 'off_weight', 'off_bias']
    args, outs, _ = s.infer_shape(feat=(1, 24, 5, 6), rois=(9, 5))
    assert args[2:] == [(196, 24, 1, 1), (196,)] and outs == [(9, 4, 7, 7)]
    _raises(lambda: dnd.Conv1x1DeformablePSROIPooling(
        mx.nd.ones((1, 8, 6, 6)), mx.nd.array([[0, 1, 1, 40, 40]]), mx.nd.ones((7, 8, 1, 1)),
        mx.nd.ones(8), spatial_scale=0.125, output_dim=2, group_size=2, pooled_size=2),
        "'weight'", '(8, 8, 1, 1)')
    _raises(lambda: dnd.Conv1x1DeformablePSROIPooling(
        mx.nd.ones((1, 8, 6, 6)), mx.nd.ones((1, 4)), mx.nd.ones((8, 8, 1, 1)), mx.nd.ones(8),
        spatial_scale=0.125, output_dim=2, group_size=2, pooled_size=2), "'rois'", '5')
    with pytest.raises(TypeError, match='no_trans'):
        dnd.Conv1x1DeformablePSROIPooling(mx.nd.ones((1, 8, 6, 6)), mx.nd.ones((1, 5)),
                                          mx.nd.ones((8, 8, 1, 1)), mx.nd.ones(8),
                                          spatial_scale=0.125, output_dim=2, group_size=2,
                                          pooled_size=2, no_trans=True)


# ---------------------------------------------------------------------------- bad input

def _raises(fn, *words):
    with pytest.raises(mx.base.MXNetError) as e:
        fn()
        mx.nd.waitall()
    for w in words:
        assert w in str(e.value), str(e.value)


def _dargs(R=3, C=8, ncls=1, part=2):
    return (mx.nd.ones((1, C, 6, 6)), mx.nd.array([[0, 1, 1, 40, 40]] * R),
            mx.nd.zeros((R, 2 * ncls, part, part)))


DP = dict(spatial_scale=0.125, output_dim=2, group_size=2, pooled_size=2, sample_per_part=2,
          trans_std=0.1)


def test_error_rois_columns():
    data, _, trans = _dargs()
    _raises(lambda: dnd.DeformablePSROIPooling(data, mx.nd.ones((3, 4)), trans, **DP),
            "'rois'", '5')
    _raises(lambda: dnd.PSROIPooling(data, mx.nd.ones((3, 6)), spatial_scale=0.125,
                                     output_dim=2, pooled_size=2), "'rois'", '5')


def test_error_trans_shape():
    data, rois, _ = _dargs()
    _raises(lambda: dnd.DeformablePSROIPooling(data, rois, mx.nd.zeros((3, 2, 3, 3)), **DP),
            "'trans'", 'part_size = 2')
    _raises(lambda: dnd.DeformablePSROIPooling(data, rois, mx.nd.zeros((2, 2, 2, 2)), **DP),
            "'trans'", 'num_rois = 3')
    _raises(lambda: dnd.DeformablePSROIPooling(data, rois, mx.nd.zeros((3, 6, 2, 2)), **DP),
            "'output_dim'", 'trans.shape[1] / 2 = 3')


def test_error_data_channels_and_batch_index():
    data, rois, trans = _dargs(C=9)
    _raises(lambda: dnd.DeformablePSROIPooling(data, rois, trans, **DP), "'data'", '8')
    data, rois, trans = _dargs()
    bad = mx.nd.array([[1, 1, 1, 40, 40]] * 3)
    _raises(lambda: dnd.DeformablePSROIPooling(data, bad, trans, **DP), "'rois'", 'batch index')
    _raises(lambda: dnd.PSROIPooling(data, bad, spatial_scale=0.125, output_dim=2,
                                     pooled_size=2), "'rois'", 'batch index')


@pytest.mark.parametrize('arg,value', [('pooled_size', 0), ('group_size', -1),
                                       ('sample_per_part', 0), ('output_dim', 0),
                                       ('spatial_scale', 0), ('part_size', -2)])
def test_error_bad_pool_arguments(arg, value):
    data, rois, trans = _dargs()
    kw = dict(DP)
    kw[arg] = value
    _raises(lambda: dnd.DeformablePSROIPooling(data, rois, trans, **kw), "'%s'" % arg)


def test_error_zero_rois_and_trans_misuse():
    data, rois, trans = _dargs()
    _raises(lambda: dnd.DeformablePSROIPooling(data, mx.nd.array(np.zeros((0, 5))), trans, **DP),
            "'rois'", 'empty')
    with pytest.raises(ValueError, match='trans'):
        dnd.DeformablePSROIPooling(data, rois, trans, no_trans=True, **DP)
    with pytest.raises(ValueError, match='trans'):
        dnd.DeformablePSROIPooling(data, rois, **DP)


@pytest.mark.parametrize('deformable', [False, True])
def test_float16_pooling_accumulates_in_float32(deformable):
    """float16 inputs: computed in float32 and rounded once, so the result is within float16
    rounding of the float64 result on the same (float16) inputs, and never further from it
    than the built-in's float16 result (which rounds every operation to float16)."""
    rng = np.random.default_rng(8)
    N, H, W, R, out_dim, group = 2, 14, 14, 6, 2, 3
    data = rng.uniform(0, 1, (N, out_dim * group * group, H, W)).astype(np.float16)
    rois = _rois(rng, R, N, H, W, 16).astype(np.float16)
    params = dict(spatial_scale=0.0625, output_dim=out_dim, pooled_size=group, group_size=group)
    arrays, grad_idx = [data, rois], [0]
    if deformable:
        arrays.append(rng.standard_normal((R, 2 * out_dim, group, group)).astype(np.float16))
        grad_idx.append(2)
        params.update(sample_per_part=4, trans_std=0.1)
    head = rng.uniform(0, 1, (R, out_dim, group, group)).astype(np.float16)
    name = 'DeformablePSROIPooling' if deformable else 'PSROIPooling'
    ours = _run(lambda *x: getattr(dnd, name)(*x, **params), arrays, head, grad_idx)
    ref16 = _run(lambda *x: getattr(mx.nd.contrib, name)(*x, **params), arrays, head, grad_idx)
    ref64 = _run(lambda *x: getattr(mx.nd.contrib, name)(*x, **params),
                 [a.astype(np.float64) for a in arrays], head.astype(np.float64), grad_idx)
    flat = lambda r: [r[0]] + r[1]
    for a, b, t in zip(flat(ours), flat(ref16), flat(ref64)):
        assert a.dtype == np.float16
        t = t.astype(np.float64)
        err, err_builtin = np.abs(a - t).max(), np.abs(b - t).max()
        assert err <= 2 ** -10 * max(1.0, np.abs(t).max()), err   # one float16 rounding
        assert err <= err_builtin + 1e-7, (err, err_builtin)


def test_each_error_names_only_itself():
    """MXNet 1.9's extension API only ever appends to its list of error messages; each error
    of ours reports its own message only."""
    data = mx.nd.ones((1, 8, 5, 5))
    messages = []
    for out_dim in (3, 4, 5):
        with pytest.raises(mx.base.MXNetError) as e:
            dnd.PSROIPooling(data, mx.nd.zeros((2, 5)), spatial_scale=1, output_dim=out_dim,
                             pooled_size=2).asnumpy()
        messages.append(str(e.value))
    for m, out_dim in zip(messages, (3, 4, 5)):
        assert m.count('PSROIPooling:') == 1, m
        assert 'output_dim * group_size^2 = %d' % out_dim in m, m
    with pytest.raises(mx.base.MXNetError) as e:
        dnd.DeformableConvolution(data, mx.nd.ones((1, 17, 5, 5)), mx.nd.ones((2, 8, 3, 3)),
                                  kernel=(3, 3), pad=(1, 1), num_filter=2, no_bias=True).asnumpy()
    assert "'offset'" in str(e.value) and 'PSROIPooling' not in str(e.value), str(e.value)


def test_library_version_mismatch_is_reported(tmp_path, monkeypatch):
    stale = tmp_path / 'libdcn_ops.mxnet_version'
    stale.write_text('0.0.1\n')
    monkeypatch.setattr(_library, 'VERSION_PATH', str(stale))
    with pytest.raises(_library.OperatorLibraryError, match=r'0\.0\.1.*init\.sh'):
        _library._check_files()
    monkeypatch.setattr(_library, 'LIB_PATH', str(tmp_path / 'missing.so'))
    with pytest.raises(_library.OperatorLibraryError, match=r'missing.*init\.sh'):
        _library._check_files()
    # the real files are consistent with the running MXNet
    monkeypatch.undo()
    _library._check_files()
    assert dcn.ops.is_loaded()


def test_builtin_namespace_switch():
    ours, builtin = dcn.ops.sym_ops(False), dcn.ops.sym_ops(True)
    for n in dcn.ops.OP_NAMES:
        assert getattr(builtin, n) is getattr(mx.sym.contrib, n)
        assert getattr(ours, n) is getattr(dsym, n)
