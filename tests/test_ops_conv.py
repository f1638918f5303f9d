"""Deformable convolution operators (dcn.ops) against MXNet's built-in contrib operators."""
import numpy as np
import pytest
import mxnet as mx

import dcn.ops
from dcn.ops import nd as dnd, sym as dsym


def _run(fn, arrays, head, grad=True):
    """Forward fn(*arrays) and backward with head gradient; returns (out, [grads])."""
    xs = [mx.nd.array(a, dtype=a.dtype) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
    if not grad:
        return y.asnumpy(), None
    y.backward(mx.nd.array(head, dtype=head.dtype))
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def _out_size(n, k, p, s, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _config(rng):
    groups = int(rng.choice([1, 2]))
    dgroups = int(rng.choice([1, 2]))
    cpg = int(rng.integers(1, 4))
    C = cpg * 2 * groups * dgroups // np.gcd(groups, dgroups)
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    cfg = dict(N=int(rng.integers(1, 4)), C=C, H=int(rng.integers(5, 10)),
               W=int(rng.integers(5, 10)), F=groups * int(rng.integers(1, 4)),
               kernel=(kh, kw), stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
               dilate=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
               pad=(int(rng.integers(0, 3)), int(rng.integers(0, 3))),
               num_group=groups, num_deformable_group=dgroups,
               no_bias=bool(rng.integers(0, 2)), offset_scale=float(rng.choice([0.5, 2.0, 6.0])))
    return cfg


def _make(cfg, rng, dtype, modulated):
    N, C, H, W, F = cfg['N'], cfg['C'], cfg['H'], cfg['W'], cfg['F']
    kh, kw = cfg['kernel']
    Ho = _out_size(H, kh, cfg['pad'][0], cfg['stride'][0], cfg['dilate'][0])
    Wo = _out_size(W, kw, cfg['pad'][1], cfg['stride'][1], cfg['dilate'][1])
    dg = cfg['num_deformable_group']
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    # continuous random offsets: many samples land between pixels, some outside the map
    offset = (rng.standard_normal((N, 2 * dg * kh * kw, Ho, Wo)) * cfg['offset_scale']).astype(dtype)
    weight = rng.standard_normal((F, C // cfg['num_group'], kh, kw)).astype(dtype)
    arrays = [data, offset]
    if modulated:
        arrays.append(rng.uniform(0, 1, (N, dg * kh * kw, Ho, Wo)).astype(dtype))
    arrays.append(weight)
    if not cfg['no_bias']:
        arrays.append(rng.standard_normal((F,)).astype(dtype))
    head = rng.standard_normal((N, F, Ho, Wo)).astype(dtype)
    params = {k: cfg[k] for k in ('kernel', 'stride', 'dilate', 'pad', 'num_group',
                                  'num_deformable_group', 'no_bias')}
    params['num_filter'] = F
    return arrays, head, params


def _assert_close(a, b, name, rtol=1e-4, atol=1e-4):
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale, err_msg=name)


@pytest.mark.parametrize('seed', range(14))
def test_deformable_conv_matches_builtin(seed):
    rng = np.random.default_rng(seed)
    cfg = _config(rng)
    arrays, head, params = _make(cfg, rng, np.float32, False)
    names = ['data', 'offset', 'weight'] + ([] if cfg['no_bias'] else ['bias'])
    ours, g_ours = _run(lambda *x: dnd.DeformableConvolution(*x, **params), arrays, head)
    ref, g_ref = _run(lambda *x: mx.nd.contrib.DeformableConvolution(*x, **params), arrays, head)
    _assert_close(ours, ref, 'output %s' % cfg)
    for n, a, b in zip(names, g_ours, g_ref):
        _assert_close(a, b, 'grad %s %s' % (n, cfg))


def test_deformable_conv_samples_on_border_and_integer_positions():
    """Offsets that put samples exactly on pixel centres, on the last row/column and in the
    final half pixel, where the clamping rule of DCNv1 matters."""
    rng = np.random.default_rng(100)
    N, C, H, W = 2, 4, 6, 7
    data = rng.standard_normal((N, C, H, W)).astype(np.float32)
    choices = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 0.75, 2.0, -3.0, 5.5, 6.25, 6.5])
    offset = rng.choice(choices, size=(N, 18, H, W)).astype(np.float32)
    weight = rng.standard_normal((3, C, 3, 3)).astype(np.float32)
    head = rng.standard_normal((N, 3, H, W)).astype(np.float32)
    params = dict(kernel=(3, 3), pad=(1, 1), num_filter=3, no_bias=True)
    ours, g_ours = _run(lambda *x: dnd.DeformableConvolution(*x, **params),
                        [data, offset, weight], head)
    ref, g_ref = _run(lambda *x: mx.nd.contrib.DeformableConvolution(*x, **params),
                      [data, offset, weight], head)
    _assert_close(ours, ref, 'output')
    for n, a, b in zip(['data', 'offset', 'weight'], g_ours, g_ref):
        _assert_close(a, b, n)


def test_deformable_conv_zero_offset_is_plain_convolution():
    rng = np.random.default_rng(7)
    data = mx.nd.array(rng.standard_normal((2, 6, 11, 9)))
    weight = mx.nd.array(rng.standard_normal((8, 3, 3, 3)))
    bias = mx.nd.array(rng.standard_normal((8,)))
    offset = mx.nd.zeros((2, 2 * 9 * 3, 11, 9))
    kw = dict(kernel=(3, 3), pad=(2, 2), dilate=(2, 2), stride=(1, 1), num_filter=8, num_group=2)
    ours = dnd.DeformableConvolution(data, offset, weight, bias, num_deformable_group=3, **kw)
    ref = mx.nd.Convolution(data, weight, bias, **kw)
    assert ours.shape == ref.shape == (2, 8, 11, 9)
    _assert_close(ours.asnumpy(), ref.asnumpy(), 'plain conv', rtol=1e-5, atol=1e-5)


def test_deformable_conv_float64_matches_float32_builtin():
    rng = np.random.default_rng(3)
    cfg = dict(N=2, C=4, H=7, W=8, F=4, kernel=(3, 2), stride=(1, 2), dilate=(2, 1), pad=(1, 1),
               num_group=2, num_deformable_group=2, no_bias=False, offset_scale=2.0)
    arrays, head, params = _make(cfg, rng, np.float64, False)
    ours, g_ours = _run(lambda *x: dnd.DeformableConvolution(*x, **params), arrays, head)
    assert ours.dtype == np.float64 and all(g.dtype == np.float64 for g in g_ours)
    ref, g_ref = _run(lambda *x: mx.nd.contrib.DeformableConvolution(*x, **params),
                      [a.astype(np.float32) for a in arrays], head.astype(np.float32))
    _assert_close(ours, ref, 'output', rtol=1e-4, atol=1e-5)
    for a, b in zip(g_ours, g_ref):
        _assert_close(a, b, 'grad', rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('seed', range(8))
def test_modulated_conv_forward_matches_builtin(seed):
    rng = np.random.default_rng(1000 + seed)
    cfg = _config(rng)
    arrays, head, params = _make(cfg, rng, np.float32, True)
    params['im2col_step'] = int(rng.choice([1, 64]))
    ours = dnd.ModulatedDeformableConvolution(*[mx.nd.array(a) for a in arrays], **params)
    ref = mx.nd.contrib.ModulatedDeformableConvolution(*[mx.nd.array(a) for a in arrays],
                                                       **params)
    _assert_close(ours.asnumpy(), ref.asnumpy(), 'output %s' % cfg)


def _numeric_grad(f, arrays, head, i, picks, eps=1e-6):
    """Central differences of sum(f * head) w.r.t. the flat elements `picks` of input i."""
    flat = arrays[i].reshape(-1)
    out = np.zeros(len(picks))
    for n, k in enumerate(picks):
        old = flat[k]
        flat[k] = old + eps
        fp = float((f(arrays) * head).sum())
        flat[k] = old - eps
        fm = float((f(arrays) * head).sum())
        flat[k] = old
        out[n] = (fp - fm) / (2 * eps)
    return out


@pytest.mark.parametrize('seed,no_bias', [(0, False), (1, True)])
def test_modulated_conv_gradients_finite_differences(seed, no_bias):
    rng = np.random.default_rng(2000 + seed)
    cfg = dict(N=2, C=4, H=5, W=6, F=2, kernel=(2, 3), stride=(1, 1), dilate=(1, 2),
               pad=(1, 1), num_group=2, num_deformable_group=2, no_bias=no_bias,
               offset_scale=1.5)
    arrays, head, params = _make(cfg, rng, np.float64, True)

    def f(arrs):
        return dnd.ModulatedDeformableConvolution(
            *[mx.nd.array(a, dtype=np.float64) for a in arrs], **params).asnumpy()

    _, grads = _run(lambda *x: dnd.ModulatedDeformableConvolution(*x, **params), arrays, head)
    names = ['data', 'offset', 'mask', 'weight', 'bias']
    for i, g in enumerate(grads):
        size = arrays[i].size
        picks = rng.choice(size, size=min(size, 60), replace=False)
        num = _numeric_grad(f, arrays, head, i, picks)
        np.testing.assert_allclose(g.reshape(-1)[picks], num, rtol=1e-5, atol=1e-6,
                                   err_msg=names[i])


def test_modulated_conv_offsets_within_one_pixel_outside_get_gradient():
    """DCNv2 samples a zero-padded map: a sample half a pixel outside still moves."""
    data = mx.nd.ones((1, 1, 3, 3), dtype=np.float64)
    offset = mx.nd.zeros((1, 2, 3, 3), dtype=np.float64)
    offset[0, 0] = -0.5 - np.arange(3).reshape(3, 1) * 1.0   # h = -0.5 for every output
    mask = mx.nd.ones((1, 1, 3, 3), dtype=np.float64)
    weight = mx.nd.ones((1, 1, 1, 1), dtype=np.float64)
    for x in (offset, mask):
        x.attach_grad()
    with mx.autograd.record():
        y = dnd.ModulatedDeformableConvolution(data, offset, mask, weight, kernel=(1, 1),
                                               num_filter=1, no_bias=True)
    y.backward(mx.nd.ones_like(y))
    np.testing.assert_allclose(y.asnumpy(), 0.5)
    np.testing.assert_allclose(offset.grad.asnumpy()[0, 0], 1.0)   # d/dh of (h + 1) on [-1, 0)
    # w = 0, 1 lie inside: no w-gradient; w = 2 is the last column, where the right derivative
    # sees the zero padding
    np.testing.assert_allclose(offset.grad.asnumpy()[0, 1][:, :2], 0.0)
    np.testing.assert_allclose(offset.grad.asnumpy()[0, 1][:, 2], -0.5)
    np.testing.assert_allclose(mask.grad.asnumpy(), 0.5)


def _symbol_net(ops, modulated):
    data = mx.sym.var('data')
    off = mx.sym.Convolution(data, num_filter=2 * 9 * 2, kernel=(3, 3), pad=(2, 2),
                             dilate=(2, 2), name='conv_offset')
    if modulated:
        mask = mx.sym.sigmoid(mx.sym.Convolution(data, num_filter=9 * 2, kernel=(3, 3),
                                                 pad=(2, 2), dilate=(2, 2), name='conv_mask'))
        return ops.ModulatedDeformableConvolution(data=data, offset=off, mask=mask,
                                                  num_filter=6, kernel=(3, 3), pad=(2, 2),
                                                  dilate=(2, 2), num_deformable_group=2,
                                                  no_bias=False, name='dconv')
    return ops.DeformableConvolution(data=data, offset=off, num_filter=6, kernel=(3, 3),
                                     pad=(2, 2), dilate=(2, 2), num_deformable_group=2,
                                     no_bias=True, name='dconv')


def test_symbol_simple_bind_matches_builtin():
    ours = _symbol_net(dcn.ops.sym_ops(builtin=False), False)
    ref = _symbol_net(dcn.ops.sym_ops(builtin=True), False)
    assert ours.list_arguments() == ref.list_arguments()
    assert 'dconv_weight' in ours.list_arguments()
    assert ours.list_outputs() == ref.list_outputs() == ['dconv_output']
    shape = (2, 4, 9, 10)
    rng = np.random.default_rng(5)
    arg_shapes, _, _ = ref.infer_shape(data=shape)
    args = {n: mx.nd.array(rng.standard_normal(s) * 0.5)
            for n, s in zip(ref.list_arguments(), arg_shapes)}
    results = []
    for s in (ours, ref):
        ex = s.simple_bind(mx.cpu(), data=shape)
        for n, v in args.items():
            ex.arg_dict[n][:] = v
        out = ex.forward(is_train=True)[0]
        ex.backward(mx.nd.ones_like(out))
        results.append((out.asnumpy(), {n: ex.grad_dict[n].asnumpy() for n in args}))
    _assert_close(results[0][0], results[1][0], 'output')
    for n in args:
        _assert_close(results[0][1][n], results[1][1][n], 'grad ' + n)


def test_module_with_modulated_symbol_trains_and_matches_builtin_forward():
    ours = _symbol_net(dcn.ops.sym_ops(), True)
    ref = _symbol_net(dcn.ops.sym_ops(builtin=True), True)
    shape = (2, 4, 8, 8)
    mod = mx.mod.Module(ours, data_names=['data'], label_names=None)
    mod.bind(data_shapes=[('data', shape)])
    mod.init_params(mx.init.Normal(0.1))
    arg, aux = mod.get_params()
    arg = {k: v.copy() for k, v in arg.items()}
    assert arg['dconv_weight'].shape == (6, 4, 3, 3) and arg['dconv_bias'].shape == (6,)
    batch = mx.io.DataBatch([mx.nd.array(np.random.default_rng(1).standard_normal(shape))])
    mod.forward(batch, is_train=True)
    out = mod.get_outputs()[0].asnumpy()
    mod.backward([mx.nd.ones((2, 6, 8, 8))])
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.01})
    mod.update()
    ref_mod = mx.mod.Module(ref, data_names=['data'], label_names=None)
    ref_mod.bind(data_shapes=[('data', shape)], for_training=False)
    ref_mod.set_params(arg, aux)
    ref_mod.forward(batch, is_train=False)
    _assert_close(out, ref_mod.get_outputs()[0].asnumpy(), 'module output')
    new_arg, _ = mod.get_params()
    assert not np.allclose(new_arg['dconv_weight'].asnumpy(), arg['dconv_weight'].asnumpy())


# ---------------------------------------------------------------------------- bad input

def _conv_args(C=4, H=6, W=6, dg=1, kernel=(3, 3), offset_ch=None, N=1):
    data = mx.nd.ones((N, C, H, W))
    oc = 2 * dg * kernel[0] * kernel[1] if offset_ch is None else offset_ch
    return data, mx.nd.zeros((N, oc, H, W)), mx.nd.ones((4, C, kernel[0], kernel[1]))


def _raises(fn, *words):
    with pytest.raises(mx.base.MXNetError) as e:
        fn()
        mx.nd.waitall()
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_error_wrong_offset_channels():
    data, offset, weight = _conv_args(offset_ch=17)
    _raises(lambda: dnd.DeformableConvolution(data, offset, weight, kernel=(3, 3), pad=(1, 1),
                                              num_filter=4, no_bias=True),
            "'offset'", '18')


def test_error_wrong_mask_channels():
    data, offset, weight = _conv_args()
    mask = mx.nd.ones((1, 8, 6, 6))
    _raises(lambda: dnd.ModulatedDeformableConvolution(data, offset, mask, weight, kernel=(3, 3),
                                                       pad=(1, 1), num_filter=4, no_bias=True),
            "'mask'", '9')


def test_error_num_filter_not_divisible_by_groups():
    data, offset, weight = _conv_args()
    _raises(lambda: dnd.DeformableConvolution(data, offset, weight, kernel=(3, 3), pad=(1, 1),
                                              num_filter=5, num_group=2, no_bias=True),
            "'num_filter'", "'num_group'")


def test_error_channels_not_divisible_by_deformable_groups():
    data, offset, weight = _conv_args(C=3, dg=2)
    _raises(lambda: dnd.DeformableConvolution(data, offset, weight, kernel=(3, 3), pad=(1, 1),
                                              num_filter=4, num_deformable_group=2,
                                              no_bias=True),
            "'num_deformable_group'")


@pytest.mark.parametrize('arg,value,word', [
    ('kernel', (0, 3), "'kernel'"), ('kernel', (-1, 3), "'kernel'"),
    ('stride', (0, 1), "'stride'"), ('dilate', (1, 0), "'dilate'"), ('pad', (-1, 0), "'pad'"),
    ('num_filter', 0, "'num_filter'"), ('num_deformable_group', 0, "'num_deformable_group'"),
    ('kernel', (3, 3, 3), "'kernel'"), ('layout', 'NHWC', "'layout'"),
])
def test_error_bad_arguments(arg, value, word):
    data, offset, weight = _conv_args()
    kw = dict(kernel=(3, 3), pad=(1, 1), num_filter=4, no_bias=True)
    kw[arg] = value
    _raises(lambda: dnd.DeformableConvolution(data, offset, weight, **kw), word)


def test_error_zero_sized_and_too_small_inputs():
    data, offset, weight = _conv_args()
    s = dsym.DeformableConvolution(mx.sym.var('data'), mx.sym.var('offset'), kernel=(3, 3),
                                   pad=(1, 1), num_filter=4, no_bias=True)
    _raises(lambda: dnd.DeformableConvolution(mx.nd.array(np.ones((0, 4, 6, 6))), offset,
                                              weight, kernel=(3, 3), pad=(1, 1), num_filter=4,
                                              no_bias=True), "'data'", 'empty')
    _raises(lambda: s.infer_shape(data=(2, 4, 6)), "'data'", '4-D')
    _raises(lambda: dnd.DeformableConvolution(mx.nd.ones((1, 4, 2, 2)), offset, weight,
                                              kernel=(3, 3), num_filter=4, no_bias=True),
            "'kernel'")


def test_error_weight_shape_and_dtype():
    data, offset, _ = _conv_args()
    _raises(lambda: dnd.DeformableConvolution(data, offset, mx.nd.ones((4, 3, 3, 3)),
                                              kernel=(3, 3), pad=(1, 1), num_filter=4,
                                              no_bias=True), "'weight'", '(4, 4, 3, 3)')
    _raises(lambda: dnd.DeformableConvolution(data, offset.astype(np.float64),
                                              mx.nd.ones((4, 4, 3, 3)), kernel=(3, 3),
                                              pad=(1, 1), num_filter=4, no_bias=True),
            "'offset'", 'dtype')


def test_python_argument_errors():
    data, offset, weight = _conv_args()
    with pytest.raises(TypeError, match='kernal'):
        dnd.DeformableConvolution(data, offset, weight, kernal=(3, 3), num_filter=4)
    with pytest.raises(ValueError, match='bias'):
        dnd.DeformableConvolution(data, offset, weight, kernel=(3, 3), num_filter=4)
    with pytest.raises(TypeError, match='offset'):
        dnd.DeformableConvolution(data, offset.asnumpy(), weight, kernel=(3, 3), num_filter=4,
                                  no_bias=True)
    with pytest.raises(ValueError, match='bias'):
        dsym.DeformableConvolution(mx.sym.var('d'), mx.sym.var('o'), bias=mx.sym.var('b'),
                                   kernel=(3, 3), num_filter=4, no_bias=True)


@pytest.mark.parametrize('modulated', [False, True])
def test_float16_conv_accumulates_in_float32(modulated):
    """float16 inputs (the built-ins refuse them on the CPU: "FP16 gemm on cpu not
    implemented"): computed in float32 and rounded once, so output and gradients are within
    a float16 rounding of the float64 result on the same float16 inputs: the built-in's
    (DCNv2 gradients: ours in float64, the built-in has no CPU backward for DCNv2)."""
    rng = np.random.default_rng(4)
    cfg = dict(N=2, C=4, H=9, W=8, F=6, kernel=(3, 3), stride=(1, 1), dilate=(2, 2),
               pad=(2, 2), num_group=2, num_deformable_group=2, no_bias=False,
               offset_scale=2.0)
    arrays, head, params = _make(cfg, rng, np.float16, modulated)
    name = 'ModulatedDeformableConvolution' if modulated else 'DeformableConvolution'
    ours, g_ours = _run(lambda *x: getattr(dnd, name)(*x, **params), arrays, head)
    wide = [a.astype(np.float64) for a in arrays]
    ref, g_ref = _run(lambda *x: getattr(mx.nd.contrib, name)(*x, **params), wide,
                      head.astype(np.float64), grad=not modulated)
    if modulated:
        _, g_ref = _run(lambda *x: getattr(dnd, name)(*x, **params), wide,
                        head.astype(np.float64))
    for a, b in zip([ours] + g_ours, [ref] + g_ref):
        assert a.dtype == np.float16
        scale = max(1.0, np.abs(b).max())
        # float16 rounding of the result (2^-11 relative) plus float32 rounding noise
        assert np.abs(a - b).max() <= 2 ** -10 * scale, (np.abs(a - b).max(), scale)


@pytest.mark.parametrize('op,kwargs', [
    ('DeformableConvolution', dict(num_filter=3, kernel=(3, 3))),
    ('DeformableConvolution', dict(num_filter=3, kernel=(3, 3), no_bias=True)),
    ('ModulatedDeformableConvolution', dict(num_filter=3, kernel=(3, 3))),
    ('ModulatedDeformableConvolution', dict(num_filter=3, kernel=(3, 3), no_bias=True)),
    ('DeformablePSROIPooling', dict(spatial_scale=0.0625, output_dim=2, pooled_size=3,
                                    group_size=3, sample_per_part=2, trans_std=0.1)),
    ('DeformablePSROIPooling', dict(spatial_scale=0.0625, output_dim=2, pooled_size=3,
                                    group_size=3, no_trans=True)),
    ('PSROIPooling', dict(spatial_scale=0.0625, output_dim=2, pooled_size=3)),
])
def test_symbol_creates_omitted_inputs_as_builtin(op, kwargs):
    """Inputs left out of a symbol call (data included) become <name>_<input> variables with
    the call's attributes, as MXNet's built-ins create them; named and unnamed calls."""
    for name in ('x', None):
        attr = {'lr_mult': '0.5'}
        with mx.name.NameManager():   # a fresh counter for the automatic names
            ours = getattr(dsym, op)(name=name, attr=attr, **kwargs)
        with mx.name.NameManager():
            ref = getattr(mx.sym.contrib, op)(name=name, attr=attr, **kwargs)
        assert ours.list_arguments() == ref.list_arguments()
        assert ours.list_outputs() == ref.list_outputs()
        attrs = ours.attr_dict()
        for arg in ours.list_arguments():
            assert attrs[arg]['__lr_mult__'] == '0.5', (arg, attrs[arg])
            assert len(eval(attrs[arg]['__shape__'])) == dcn.ops._common.INPUT_NDIM[
                arg.split('_')[-1]]   # rank declared (MXNet 1.9 shape inference bug)


def test_deformable_conv_large_blocks_match_builtin():
    """Shapes spanning several GEMM blocks (K > 256, M > 96, H*W > 3072) and edge tiles."""
    rng = np.random.default_rng(77)
    cfg = dict(N=1, C=34, H=62, W=53, F=101, kernel=(3, 3), stride=(1, 1), dilate=(2, 2),
               pad=(2, 2), num_group=1, num_deformable_group=2, no_bias=False, offset_scale=1.0)
    arrays, head, params = _make(cfg, rng, np.float32, False)
    ours, g_ours = _run(lambda *x: dnd.DeformableConvolution(*x, **params), arrays, head)
    ref, g_ref = _run(lambda *x: mx.nd.contrib.DeformableConvolution(*x, **params), arrays, head)
    _assert_close(ours, ref, 'output')
    for n, a, b in zip(['data', 'offset', 'weight', 'bias'], g_ours, g_ref):
        _assert_close(a, b, 'grad ' + n)


def test_symbol_attributes_and_json_roundtrip():
    data, off = mx.sym.var('data'), mx.sym.var('off')
    with mx.AttrScope(ctx_group='stage1', lr_mult='0.5'):
        s = dsym.DeformableConvolution(data, off, kernel=(3, 3), pad=(1, 1), num_filter=4,
                                       name='dc')
    assert s.attr_dict()['dc']['lr_mult'] == '0.5'
    assert s.list_arguments() == ['data', 'off', 'dc_weight', 'dc_bias']
    s2 = mx.sym.load_json(s.tojson())
    args, outs, _ = s2.infer_shape(data=(2, 3, 7, 8))
    assert args == [(2, 3, 7, 8), (2, 18, 7, 8), (4, 3, 3, 3), (4,)]
    assert outs == [(2, 4, 7, 8)]
