"""FPNROIPooling (dcn.ops) against the original's fpn_roi_pooling.py: each RoI pooled from
the pyramid level of the FPN rule, with MXNet's built-ins as the oracle (ROIPooling, or
DeformablePSROIPooling no_trans -> FullyConnected -> DeformablePSROIPooling with trans,
per level on the RoIs of that level, put back in RoI order)."""
import numpy as np
import pytest
import mxnet as mx
from mxnet import autograd

import dcn.ops

STRIDES = (4, 8, 16, 32)


def level_rule(rois):
    """The original's assignment, computed by numpy on the RoI dtype as it does."""
    w = rois[:, 3] - rois[:, 1] + 1
    h = rois[:, 4] - rois[:, 2] + 1
    with np.errstate(divide='ignore'):  # a zero area: log2(0) = -inf, clipped to P2
        return np.clip(np.floor(2 + np.log2(np.sqrt(w * h) / 224)), 0, 3).astype(int)


def random_rois(rng, n, image_hw, batch, levels_wanted):
    """RoIs whose sizes fall on the wanted levels (boxes partly outside the image too)."""
    H, W = image_hw
    ranges = {0: (8, 100), 1: (115, 220), 2: (230, 440), 3: (460, 700)}
    rows = []
    for i in range(n):
        lo, hi = ranges[levels_wanted[i % len(levels_wanted)]]
        side = rng.uniform(lo, hi)
        ar = rng.uniform(0.7, 1.4)
        w, h = side * ar, side / ar
        x1 = rng.uniform(-20, W - 0.5 * w)
        y1 = rng.uniform(-20, H - 0.5 * h)
        rows.append([rng.randint(batch), x1, y1, x1 + w - 1, y1 + h - 1])
    return np.array(rows)


def make_case(rng, dtype, deformable, levels_wanted, n=9, C=None, batch=2):
    C = C or (256 if deformable else 6)
    H, W = 640, 704
    maps = [rng.randn(batch, C, H // s, W // s).astype(dtype) for s in STRIDES]
    rois = random_rois(rng, n, (H, W), batch, levels_wanted).astype(dtype)
    weights = [(rng.randn(98, 49 * C) * 0.002).astype(dtype) for _ in STRIDES]
    biases = [(rng.randn(98) * 0.3).astype(dtype) for _ in STRIDES]
    return maps, rois, weights, biases


def builtin_pool(maps, rois, weights, biases, deformable):
    """The original's composition of built-ins (NDArrays; recorded under autograd)."""
    lev = level_rule(rois.asnumpy())
    pieces, order = [], []
    for l, s in enumerate(STRIDES):
        idx = np.where(lev == l)[0]
        if len(idx) == 0:
            continue
        r = mx.nd.array(rois.asnumpy()[idx], dtype=rois.dtype)
        if deformable:
            t = mx.nd.contrib.DeformablePSROIPooling(
                data=maps[l], rois=r, group_size=1, pooled_size=7, sample_per_part=4,
                no_trans=True, part_size=7, output_dim=256, spatial_scale=1.0 / s)
            off = mx.nd.FullyConnected(data=t, weight=weights[l], bias=biases[l],
                                       num_hidden=98).reshape((-1, 2, 7, 7))
            p = mx.nd.contrib.DeformablePSROIPooling(
                data=maps[l], rois=r, trans=off, group_size=1, pooled_size=7,
                sample_per_part=4, no_trans=False, part_size=7, output_dim=256,
                spatial_scale=1.0 / s, trans_std=0.1)
        else:
            p = mx.nd.ROIPooling(maps[l], r, (7, 7), spatial_scale=1.0 / s)
        pieces.append(p)
        order.extend(idx.tolist())
    cat = mx.nd.concat(*pieces, dim=0)
    inv = np.argsort(np.array(order))
    return mx.nd.take(cat, mx.nd.array(inv, dtype='int64'))


def ours(maps, rois, weights, biases, deformable, **kw):
    args = {'data_p%d' % (2 + l): m for l, m in enumerate(maps)}
    if deformable:
        for l in range(len(maps)):
            args['offset_p%d_weight' % (2 + l)] = weights[l]
            args['offset_p%d_bias' % (2 + l)] = biases[l]
    return dcn.ops.nd.FPNROIPooling(rois=rois, with_deformable=deformable, **args, **kw)


def run_both(case, dtype, deformable, rng):
    maps, rois, weights, biases = case
    results = []
    head = None
    for fn in (ours, builtin_pool):
        nd_maps = [mx.nd.array(m, dtype=dtype) for m in maps]
        nd_w = [mx.nd.array(w, dtype=dtype) for w in weights]
        nd_b = [mx.nd.array(b, dtype=dtype) for b in biases]
        nd_r = mx.nd.array(rois, dtype=dtype)
        params = nd_maps + (nd_w + nd_b if deformable else [])
        for x in params:
            x.attach_grad()
        with autograd.record():
            out = fn(nd_maps, nd_r, nd_w, nd_b, deformable)
            if head is None:
                head = rng.randn(*out.shape).astype(dtype)
            loss = (out * mx.nd.array(head, dtype=dtype)).sum()
        loss.backward()
        results.append((out.asnumpy(), [x.grad.asnumpy() for x in params]))
    return results


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('levels_wanted', [(0, 1, 2, 3), (0, 2), (3,), (1, 1, 0)])
def test_plain_matches_builtin_roipooling(dtype, levels_wanted):
    rng = np.random.RandomState(hash(levels_wanted) % 1000)
    case = make_case(rng, dtype, False, levels_wanted, n=11)
    lev = level_rule(case[1])
    assert set(lev) == set(levels_wanted)  # the case covers the wanted levels only
    (o1, g1), (o2, g2) = run_both(case, dtype, False, rng)
    np.testing.assert_array_equal(o1, o2)
    for l, (a, b) in enumerate(zip(g1, g2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg='grad data_p%d' % (2 + l))
        if l not in set(lev):
            assert not a.any()  # a level without RoIs gets no gradient


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_plain_ties_nan_and_lowest_values_match_builtin(dtype):
    """Maps of a few integer values (many equal maxima in a bin: the first one, row by row,
    gets the gradient), NaN cells (never the maximum), -inf and -FLT_MAX cells (a bin of only
    those has no maximum cell: value -FLT_MAX, no gradient), bins of every width (the vector
    loop of the float32 scan and its remainder) against the built-in ROIPooling."""
    rng = np.random.RandomState(5)
    maps, rois, weights, biases = make_case(rng, dtype, False, (0, 1, 2, 3), n=24)
    lowest = np.finfo(np.float32).min
    for m in maps:
        m[...] = rng.randint(-2, 3, m.shape)
        m[rng.uniform(size=m.shape) < 0.1] = np.nan
        m[rng.uniform(size=m.shape) < 0.05] = -np.inf
        m[0, 1] = lowest                      # channel 1 of image 0: nothing above -FLT_MAX
        m[0, 2, ::2] = np.nan                 # channel 2: NaN rows between -inf rows
        m[0, 2, 1::2] = -np.inf
    rois[:, 0] = np.arange(len(rois)) % 2
    (o1, g1), (o2, g2) = run_both((maps, rois, weights, biases), dtype, False, rng)
    np.testing.assert_array_equal(o1, o2)
    assert (o1 == lowest).any() and (o1 == 2).any()  # the case has both kinds of bins
    for l, (a, b) in enumerate(zip(g1, g2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg='grad data_p%d' % (2 + l))


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('levels_wanted', [(0, 1, 2, 3), (1, 3)])
def test_deformable_matches_builtin_composition(dtype, levels_wanted):
    rng = np.random.RandomState(7 + len(levels_wanted))
    case = make_case(rng, dtype, True, levels_wanted, n=7, batch=1)
    (o1, g1), (o2, g2) = run_both(case, dtype, True, rng)
    tol = 1e-4 if dtype == 'float32' else 1e-9
    np.testing.assert_allclose(o1, o2, rtol=tol, atol=tol)
    names = (['data_p%d' % (2 + l) for l in range(4)] + ['offset_p%d_weight' % (2 + l)
             for l in range(4)] + ['offset_p%d_bias' % (2 + l) for l in range(4)])
    for name, a, b in zip(names, g1, g2):
        scale = max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, err_msg='grad ' + name)
    lev = set(level_rule(case[1]))
    for l in range(4):
        if l not in lev:
            assert not g1[l].any() and not g1[4 + l].any() and not g1[8 + l].any()
        else:
            assert g1[4 + l].any() and g1[8 + l].any()


def _constant_maps(C=2):
    # map of level l holds l + 1 everywhere: the pooled value names the level used
    return [mx.nd.full((1, C, 1024 // s, 1024 // s), l + 1.0) for l, s in enumerate(STRIDES)]


def test_level_assignment_hand_made_rois():
    # (w, h) -> pyramid level of the original's rule (P2 = 0 ... P5 = 3)
    cases = [((224, 224), 2), ((111, 111), 0), ((112, 112), 1), ((223, 223), 1),
             ((448, 448), 3), ((447, 447), 2), ((1, 1), 0), ((56, 56), 0),
             ((112, 448), 2), ((2000, 2000), 3), ((0, 10), 0), ((113, 111), 0),
             ((224, 225), 2), ((896, 100), 2)]
    rois = np.array([[0, 5, 7, 5 + w - 1, 7 + h - 1] for (w, h), _ in cases], np.float32)
    expected = np.array([k for _, k in cases])
    np.testing.assert_array_equal(level_rule(rois), expected)  # the formula itself
    out = ours(_constant_maps(), mx.nd.array(rois), None, None, False).asnumpy()
    np.testing.assert_array_equal(out[:, :, 0, 0], (expected + 1)[:, None] * np.ones((1, 2)))


def test_level_assignment_random_rois_float32_and_float64():
    rng = np.random.RandomState(3)
    for dtype in (np.float32, np.float64):
        xy = rng.uniform(0, 500, (400, 2))
        wh = np.exp(rng.uniform(np.log(2), np.log(900), (400, 2)))
        rois = np.hstack([np.zeros((400, 1)), xy, xy + wh - 1]).astype(dtype)
        out = ours([m.astype(dtype) for m in _constant_maps()], mx.nd.array(rois, dtype=dtype),
                   None, None, False).asnumpy()
        np.testing.assert_array_equal(out[:, 0, 0, 0] - 1, level_rule(rois))


def test_levels_follow_number_of_strides():
    # two levels: every RoI of P4 or larger goes to the last one (clip to levels - 1)
    rois = np.array([[0, 0, 0, 49, 49], [0, 0, 0, 199, 199], [0, 0, 0, 599, 599]], np.float32)
    maps = _constant_maps()[:2]
    out = dcn.ops.nd.FPNROIPooling(rois=mx.nd.array(rois), data_p2=maps[0], data_p3=maps[1],
                                   feat_strides=(4, 8)).asnumpy()
    np.testing.assert_array_equal(out[:, 0, 0, 0], [1, 2, 2])


def test_deformable_finite_differences_float64():
    rng = np.random.RandomState(11)
    C, P = 3, 3
    strides = (4, 8)
    maps = [rng.randn(1, C, 48 // s * 2, 64 // s * 2) for s in strides]
    rois = np.array([[0, 3.2, 4.1, 60.3, 50.7], [0, 10, 2, 20, 30], [0, 1, 1, 130, 110]])
    weights = [rng.randn(2 * P * P, P * P * C) * 0.05 for _ in strides]
    biases = [rng.randn(2 * P * P) * 0.5 for _ in strides]
    head = rng.randn(3, C, P, P)

    def loss(arrs):
        mp, wt, bs = arrs[:2], arrs[2:4], arrs[4:]
        kw = {}
        for l in range(2):
            kw['data_p%d' % (2 + l)] = mx.nd.array(mp[l], dtype='float64')
            kw['offset_p%d_weight' % (2 + l)] = mx.nd.array(wt[l], dtype='float64')
            kw['offset_p%d_bias' % (2 + l)] = mx.nd.array(bs[l], dtype='float64')
        return kw

    arrs = maps + weights + biases
    kw = loss(arrs)
    for v in kw.values():
        v.attach_grad()
    r = mx.nd.array(rois, dtype='float64')
    common = dict(feat_strides=strides, pooled_size=P, output_dim=C, with_deformable=True,
                  sample_per_part=2)
    assert set(level_rule(rois)) == {0, 1}
    with autograd.record():
        out = dcn.ops.nd.FPNROIPooling(rois=r, **kw, **common)
        (out * mx.nd.array(head, dtype='float64')).sum().backward()
    names = ['data_p2', 'data_p3', 'offset_p2_weight', 'offset_p3_weight', 'offset_p2_bias',
             'offset_p3_bias']

    def f(arrs):
        o = dcn.ops.nd.FPNROIPooling(rois=r, **loss(arrs), **common).asnumpy()
        return float((o * head).sum())

    eps = 1e-6
    for i, name in enumerate(names):
        analytic = kw[name].grad.asnumpy()
        flat = np.argsort(-np.abs(analytic).ravel())[:6].tolist() + rng.choice(
            analytic.size, 6, replace=False).tolist()
        for j in flat:
            plus = [a.copy() for a in arrs]
            minus = [a.copy() for a in arrs]
            plus[i].flat[j] += eps
            minus[i].flat[j] -= eps
            numeric = (f(plus) - f(minus)) / (2 * eps)
            assert abs(numeric - analytic.flat[j]) <= 1e-5 * max(1.0, abs(numeric)), \
                (name, j, numeric, analytic.flat[j])


def test_float16_within_one_rounding_of_float32():
    rng = np.random.RandomState(5)
    maps, rois, weights, biases = make_case(rng, 'float32', True, (0, 1, 2), n=5, batch=1)
    args = lambda dt: ([mx.nd.array(m, dtype=dt) for m in maps], mx.nd.array(rois, dtype=dt),
                       [mx.nd.array(w, dtype=dt) for w in weights],
                       [mx.nd.array(b, dtype=dt) for b in biases])
    o16 = ours(*args('float16'), True).asnumpy().astype(np.float32)
    m, r, w, b = args('float32')
    r = mx.nd.array(mx.nd.array(rois, dtype='float16').asnumpy(), dtype='float32')
    m = [mx.nd.array(x.astype(np.float16)).astype('float32') for x in maps]
    w = [mx.nd.array(x.astype(np.float16)).astype('float32') for x in weights]
    b = [mx.nd.array(x.astype(np.float16)).astype('float32') for x in biases]
    o32 = ours(m, r, w, b, True).asnumpy()
    np.testing.assert_allclose(o16, o32, rtol=2e-3, atol=2e-3)


def test_symbol_inputs_and_shapes():
    s = dcn.ops.sym.FPNROIPooling(rois=mx.sym.var('rois'), name='fpn_roi_pooling',
                                  with_deformable=True,
                                  offset_p2_weight=mx.sym.var('offset_p2_weight'),
                                  offset_p2_bias=mx.sym.var('offset_p2_bias'))
    args = s.list_arguments()
    assert args == ['fpn_roi_pooling_data_p2', 'fpn_roi_pooling_data_p3',
                    'fpn_roi_pooling_data_p4', 'fpn_roi_pooling_data_p5', 'offset_p2_weight',
                    'offset_p2_bias', 'fpn_roi_pooling_offset_p3_weight',
                    'fpn_roi_pooling_offset_p3_bias', 'fpn_roi_pooling_offset_p4_weight',
                    'fpn_roi_pooling_offset_p4_bias', 'fpn_roi_pooling_offset_p5_weight',
                    'fpn_roi_pooling_offset_p5_bias', 'rois']
    shapes = {'fpn_roi_pooling_data_p%d' % (2 + l): (1, 256, 152 // 2 ** l, 256 // 2 ** l)
              for l in range(4)}
    arg_shapes, out_shapes, _ = s.infer_shape(rois=(2000, 5), **shapes)
    d = dict(zip(args, arg_shapes))
    assert d['offset_p2_weight'] == (98, 12544) and d['offset_p2_bias'] == (98,)
    assert d['fpn_roi_pooling_offset_p5_weight'] == (98, 12544)
    assert out_shapes == [(2000, 256, 7, 7)]
    plain = dcn.ops.sym.FPNROIPooling(rois=mx.sym.var('rois'), name='p')
    assert plain.list_arguments() == ['p_data_p2', 'p_data_p3', 'p_data_p4', 'p_data_p5', 'rois']
    _, out_shapes, _ = plain.infer_shape(rois=(10, 5), p_data_p2=(1, 8, 40, 40),
                                         p_data_p3=(1, 8, 20, 20), p_data_p4=(1, 8, 10, 10),
                                         p_data_p5=(1, 8, 5, 5))
    assert out_shapes == [(10, 8, 7, 7)]


def _plain_args(C=4, rois=None):
    maps = [mx.nd.ones((1, C, 64 // s, 64 // s)) for s in STRIDES]
    kw = {'data_p%d' % (2 + l): m for l, m in enumerate(maps)}
    return kw, mx.nd.array(rois if rois is not None else [[0, 0, 0, 10, 10]])


def test_error_wrong_number_of_levels():
    kw, rois = _plain_args()
    kw['data_p6'] = mx.nd.ones((1, 4, 2, 2))
    with pytest.raises(ValueError, match='data_p6'):
        dcn.ops.nd.FPNROIPooling(rois=rois, **kw)
    kw.pop('data_p6')
    kw.pop('data_p5')
    with pytest.raises(ValueError, match="'data_p5' is required"):
        dcn.ops.nd.FPNROIPooling(rois=rois, **kw)
    with pytest.raises(ValueError, match='offset_p2_weight'):
        dcn.ops.nd.FPNROIPooling(rois=rois, offset_p2_weight=mx.nd.ones((98, 4 * 49)),
                                 **_plain_args()[0])


def test_error_rois_shape_and_values():
    kw, _ = _plain_args()
    with pytest.raises(mx.base.MXNetError, match="'rois' must have shape \\(num_rois, 5\\)"):
        dcn.ops.nd.FPNROIPooling(rois=mx.nd.ones((3, 4)), **kw).wait_to_read()
    with pytest.raises(mx.base.MXNetError, match="'rois' row 1 has a negative area"):
        dcn.ops.nd.FPNROIPooling(rois=mx.nd.array([[0, 0, 0, 9, 9], [0, 10, 0, 5, 9]]),
                                 **kw).wait_to_read()
    with pytest.raises(mx.base.MXNetError, match="'rois' row 0 is invalid"):
        dcn.ops.nd.FPNROIPooling(rois=mx.nd.array([[1, 0, 0, 9, 9]]), **kw).wait_to_read()


def test_error_map_and_weight_shapes():
    kw, rois = _plain_args()
    kw['data_p4'] = mx.nd.ones((1, 5, 4, 4))
    with pytest.raises(mx.base.MXNetError, match="'data_p4' must have the batch size and "
                                                 "channels of 'data_p2'"):
        dcn.ops.nd.FPNROIPooling(rois=rois, **kw).wait_to_read()
    kw, rois = _plain_args(C=8)
    for l in range(4):
        kw['offset_p%d_weight' % (2 + l)] = mx.nd.zeros((98, 49 * 8))
        kw['offset_p%d_bias' % (2 + l)] = mx.nd.zeros((98,))
    kw['offset_p3_weight'] = mx.nd.zeros((98, 49 * 4))
    with pytest.raises(mx.base.MXNetError, match="'offset_p3_weight' must have shape "
                                                 "\\(98, 392\\)"):
        dcn.ops.nd.FPNROIPooling(rois=rois, with_deformable=True, output_dim=8,
                                 **kw).wait_to_read()
    kw['offset_p3_weight'] = mx.nd.zeros((98, 49 * 8))
    kw['offset_p5_bias'] = mx.nd.zeros((97,))
    with pytest.raises(mx.base.MXNetError, match="'offset_p5_bias' must have shape \\(98,\\)"):
        dcn.ops.nd.FPNROIPooling(rois=rois, with_deformable=True, output_dim=8,
                                 **kw).wait_to_read()
    kw['offset_p5_bias'] = mx.nd.zeros((98,))
    with pytest.raises(mx.base.MXNetError, match='output_dim = 256 channels, got 8'):
        dcn.ops.nd.FPNROIPooling(rois=rois, with_deformable=True, **kw).wait_to_read()


def test_error_bad_arguments():
    kw, rois = _plain_args()
    with pytest.raises(mx.base.MXNetError, match="'feat_strides' must hold positive"):
        dcn.ops.nd.FPNROIPooling(rois=rois, feat_strides=(4, 0, 16, 32), **kw).wait_to_read()
    with pytest.raises(TypeError, match='spatial_scale'):
        dcn.ops.nd.FPNROIPooling(rois=rois, spatial_scale=0.25, **kw)
