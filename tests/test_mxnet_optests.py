"""MXNet 1.9.1's own tests of its contrib operators, run on the CPU against the built-ins and
against ours (dcn.ops).

Adapted from apache/mxnet at tag 1.9.1:

- tests/python/gpu/test_operator_gpu.py: test_psroipooling_with_type,
  test_deformable_psroipooling_with_type, test_deformable_convolution_with_type,
  test_deformable_convolution_options;
- tests/python/unittest/test_operator.py: test_psroipooling, test_psroipooling_with_type,
  test_deformable_convolution, test_deformable_psroipooling (and its helper
  _validate_sample_location);
- tests/python/unittest/test_contrib_operator.py: test_modulated_deformable_convolution;
- tests/python/gpu/test_gluon_contrib_gpu.py: test_DeformableConvolution,
  test_ModulatedDeformableConvolution.

Every test is parametrized by ``impl``: ``builtin`` runs it on ``mx.sym.contrib`` as MXNet has
it, ``ours`` on ``dcn.ops.sym`` (the gluon layers: ``mx.sym.contrib`` / ``mx.nd.contrib``
replaced by ours while the test runs). Kept as in MXNet: shapes, dtypes, tolerances,
``scale``, gradient requests, numeric-gradient settings (``numeric_eps``, ``grad_nodes``,
rtol/atol) and the helpers of ``mxnet.test_utils``. Changed:

- every context is ``mx.cpu()`` (the GPU entries of the consistency checks are dropped; the
  numeric gradient checks that MXNet runs only when its default context is a GPU run on the
  CPU);
- consistency checks of ours: the ground truth is the built-in's float64 result (the first
  entry), then ours in each dtype of the test; ours in float16 is added to the convolution
  tests, which leave float16 out because the built-in's GPU backward has no float16 atomics
  (the built-in has no float16 convolution on the CPU); those entries use
  ``mxnet.test_utils``' default float16 tolerances;
- test_modulated_deformable_convolution of MXNet 1.9.1 builds its operator and tolerances but
  checks nothing; here it runs the numeric gradient check of its DCNv1 twin
  (test_deformable_convolution). The built-in has no CPU backward for
  ModulatedDeformableConvolution ("only implemented in GPU"): its ``builtin`` runs are
  strict expected failures;
- test_ModulatedDeformableConvolution of test_gluon_contrib_gpu.py builds
  DeformableConvolution layers (a copy of the test above it); here it builds
  ModulatedDeformableConvolution layers. The gluon tests also compare ours with the
  built-in on the same parameters (forward; backward for DCNv1);
- test_deformable_psroipooling is skipped upstream as flaky (random sample locations on
  non-differentiable points); here it runs with fixed seeds;
- repetition counts, to keep the file near a minute: the nested loops of the numeric gradient
  tests (32 to 192 configurations, each a full finite-difference pass over every input) run
  a few of their configurations, chosen so that every value of every loop variable occurs
  (see _covering); the shapes of each configuration are MXNet's. The gluon tests give the
  offset branches random weights (they start at zero, i.e. no deformation).
"""
import itertools
import math
import random

import numpy as np
import pytest
import mxnet as mx
from mxnet.test_utils import check_consistency, check_numeric_gradient

from dcn.ops import nd as dnd, sym as dsym

IMPLS = ['builtin', 'ours']


def _ops(impl):
    return mx.sym.contrib if impl == 'builtin' else dsym


def _covering(*loops):
    """m configurations of nested loops (m: the most values of a loop): the j-th takes value
    j mod n of each loop of n values, so that every value of every loop occurs."""
    m = max(len(v) for v in loops)
    return [tuple(v[j % len(v)] for v in loops) for j in range(m)]


def _seed(n):
    np.random.seed(n)
    random.seed(n)
    mx.random.seed(n)


def _consistency(impl, make_sym, ctx_list, ours_extra=(), **kwargs):
    """check_consistency of the built-in as MXNet runs it, or of ours against the built-in's
    float64 result: [built-in float64] + ours for every dtype of ctx_list (+ ours_extra)."""
    if impl == 'builtin':
        return check_consistency(make_sym(mx.sym.contrib), ctx_list, **kwargs)
    gt = [c for c in ctx_list
          if all(np.dtype(t) == np.float64 for t in c['type_dict'].values())][0]
    entries = [gt] + list(ctx_list) + list(ours_extra)
    syms = [make_sym(mx.sym.contrib)] + [make_sym(dsym)] * (len(entries) - 1)
    return check_consistency(syms, entries, **kwargs)


def _dtype_entries(shapes, dtypes):
    """ctx_list entries on mx.cpu() for the given argument shapes, one per dtype"""
    return [dict({'ctx': mx.cpu(0), 'type_dict': {k: t for k in shapes}}, **shapes)
            for t in dtypes]


# -------------------------------------------------------------------------------------------
# PSROIPooling
# -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('impl', IMPLS)
def test_psroipooling(impl):
    """test_operator.py test_psroipooling: numeric gradient of the data (rtol 1e-2, atol
    1e-3); 2 of the 32 configurations."""
    _seed(1234)
    ops = _ops(impl)
    for num_rois, num_classes, num_group, image_height, image_width in _covering(
            [1, 2], [2, 3], [2, 3], [168, 224], [168, 224]):
        for grad_nodes in [['im_data']]:
            spatial_scale = 0.0625
            feat_height = int(image_height * spatial_scale)
            feat_width = int(image_width * spatial_scale)
            im_data = np.random.rand(1, num_classes * num_group * num_group, feat_height,
                                     feat_width)
            rois_data = np.zeros([num_rois, 5])
            rois_data[:, [1, 3]] = np.sort(np.random.rand(num_rois, 2) * (image_width - 1))
            rois_data[:, [2, 4]] = np.sort(np.random.rand(num_rois, 2) * (image_height - 1))

            im_data_var = mx.symbol.Variable(name="im_data")
            rois_data_var = mx.symbol.Variable(name="rois_data")
            op = ops.PSROIPooling(data=im_data_var, rois=rois_data_var,
                                  spatial_scale=spatial_scale, group_size=num_group,
                                  pooled_size=num_group, output_dim=num_classes, name='test_op')
            rtol, atol = 1e-2, 1e-3
            check_numeric_gradient(op, [im_data, rois_data], rtol=rtol, atol=atol,
                                   grad_nodes=grad_nodes, ctx=mx.cpu())


@pytest.mark.parametrize('impl', IMPLS)
def test_psroipooling_with_type(impl):
    """test_operator.py / test_operator_gpu.py test_psroipooling_with_type (CPU entries)."""
    _seed(1235)
    arg_params = {
        'psroipool_rois': np.array([[0, 10, 22, 161, 173], [0, 20, 15, 154, 160]])}

    def make(ops):
        # plain psroipooling
        return ops.PSROIPooling(spatial_scale=0.0625, output_dim=2, pooled_size=3,
                                name='psroipool')
    ctx_list = _dtype_entries({'psroipool_data': (1, 18, 14, 14), 'psroipool_rois': (2, 5)},
                              [np.float64, np.float32, np.float16])
    _consistency(impl, make, ctx_list, grad_req={'psroipool_data': 'write',
                                                 'psroipool_rois': 'null'},
                 arg_params=arg_params)


# -------------------------------------------------------------------------------------------
# DeformablePSROIPooling
# -------------------------------------------------------------------------------------------

def _validate_sample_location(input_rois, input_offset, spatial_scale, pooled_w, pooled_h,
                              sample_per_part, part_size, output_dim, num_classes, trans_std,
                              feat_h, feat_w):
    """test_operator.py _validate_sample_location: moves the offsets of bins whose samples
    fall on non-differentiable points of the bilinear interpolation."""
    num_rois = input_rois.shape[0]
    output_offset = input_offset.copy()
    # simulate deformable psroipooling forward function
    for roi_idx in range(num_rois):
        sub_rois = input_rois[roi_idx, :].astype(np.float32)
        img_idx, x0, y0, x1, y1 = int(sub_rois[0]), sub_rois[1], sub_rois[2], sub_rois[3], \
            sub_rois[4]
        roi_start_w = round(x0) * spatial_scale - 0.5
        roi_start_h = round(y0) * spatial_scale - 0.5
        roi_end_w = round(x1 + 1) * spatial_scale - 0.5
        roi_end_h = round(y1 + 1) * spatial_scale - 0.5
        roi_w, roi_h = roi_end_w - roi_start_w, roi_end_h - roi_start_h
        bin_size_w, bin_size_h = roi_w / pooled_w, roi_h / pooled_h
        sub_bin_size_w, sub_bin_size_h = bin_size_w / sample_per_part, \
            bin_size_h / sample_per_part
        for c_top in range(output_dim):
            channel_each_cls = output_dim / num_classes
            class_id = int(c_top / channel_each_cls)
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    part_h = int(math.floor(float(ph) / pooled_h * part_size))
                    part_w = int(math.floor(float(pw) / pooled_w * part_size))
                    trans_x = input_offset[roi_idx, class_id * 2, part_h, part_w] * trans_std
                    trans_y = input_offset[roi_idx, class_id * 2 + 1, part_h, part_w] * \
                        trans_std
                    bin_h_start, bin_w_start = ph * bin_size_h + roi_start_h, \
                        pw * bin_size_w + roi_start_w

                    need_check = True
                    while need_check:
                        pass_check = True
                        for ih in range(sample_per_part):
                            for iw in range(sample_per_part):
                                h = bin_h_start + trans_y * roi_h + ih * sub_bin_size_h
                                w = bin_w_start + trans_x * roi_w + iw * sub_bin_size_w

                                if w < -0.5 or w > feat_w - 0.5 or h < -0.5 or \
                                        h > feat_h - 0.5:
                                    continue

                                w = min(max(w, 0.1), feat_w - 1.1)
                                h = min(max(h, 0.1), feat_h - 1.1)
                                # if the following condition holds, the sampling location is
                                # not differentiable; therefore the sampling is redone
                                if h - math.floor(h) < 1e-3 or math.ceil(h) - h < 1e-3 or \
                                        w - math.floor(w) < 1e-3 or math.ceil(w) - w < 1e-3:
                                    trans_x, trans_y = random.random() * trans_std, \
                                        random.random() * trans_std
                                    pass_check = False
                                    break
                            if not pass_check:
                                break
                        if pass_check:
                            output_offset[roi_idx, class_id * 2 + 1, part_h, part_w] = \
                                trans_y / trans_std
                            output_offset[roi_idx, class_id * 2, part_h, part_w] = \
                                trans_x / trans_std
                            need_check = False

    return output_offset


@pytest.mark.parametrize('impl', IMPLS)
def test_deformable_psroipooling(impl):
    """test_operator.py test_deformable_psroipooling: numeric gradients of the data and of
    the offsets (rtol 1e-2, atol 1e-3); 2 of the 64 configurations."""
    _seed(1236)
    ops = _ops(impl)
    sample_per_part = 4
    trans_std = 0.1
    for num_rois, num_classes, num_group, image_height, image_width, grad_nodes in _covering(
            [1, 2], [2, 3], [2, 3], [160, 224], [160, 224], [['im_data'], ['offset_data']],
            ):
        spatial_scale = 0.0625
        stride = int(1 / spatial_scale)
        feat_height = int(image_height * spatial_scale)
        feat_width = int(image_width * spatial_scale)
        im_data = np.random.rand(1, num_classes * num_group * num_group, feat_height, feat_width)
        rois_data = np.zeros([num_rois, 5])
        rois_data[:, [1, 3]] = np.sort(np.random.rand(num_rois, 2) *
                                       (image_width - 1 - 2 * stride)) + stride
        rois_data[:, [2, 4]] = np.sort(np.random.rand(num_rois, 2) *
                                       (image_height - 1 - 2 * stride)) + stride
        offset_data = np.random.rand(num_rois, 2 * num_classes, num_group, num_group)
        # at certain points, the bilinear interpolation function may be non-differentiable
        # to avoid this, we check whether the input locates on the valid points
        offset_data = _validate_sample_location(rois_data, offset_data, spatial_scale,
                                                num_group, num_group, sample_per_part,
                                                num_group, num_classes, num_classes, trans_std,
                                                feat_height, feat_width)
        im_data_var = mx.symbol.Variable(name="im_data")
        rois_data_var = mx.symbol.Variable(name="rois_data")
        offset_data_var = mx.symbol.Variable(name="offset_data")
        op = ops.DeformablePSROIPooling(data=im_data_var, rois=rois_data_var,
                                        trans=offset_data_var, spatial_scale=spatial_scale,
                                        sample_per_part=4, group_size=num_group,
                                        pooled_size=num_group, output_dim=num_classes,
                                        trans_std=0.1, no_trans=False, name='test_op')
        rtol, atol = 1e-2, 1e-3
        check_numeric_gradient(op, [im_data, rois_data, offset_data], rtol=rtol, atol=atol,
                               grad_nodes=grad_nodes, ctx=mx.cpu())


@pytest.mark.parametrize('impl', IMPLS)
def test_deformable_psroipooling_with_type(impl):
    """test_operator_gpu.py test_deformable_psroipooling_with_type (CPU entries)."""
    _seed(1237)
    tol = {np.dtype(np.float32): 1e-1,
           np.dtype(np.float64): 1e-3,
           np.dtype(np.float16): 1e-2}

    arg_params = {
        'deformable_psroipool_rois': np.array([[0, 10, 22, 161, 173], [0, 20, 15, 154, 160]])}

    def make(ops):
        # deformable psroipooling
        return ops.DeformablePSROIPooling(spatial_scale=0.0625, sample_per_part=4, group_size=3,
                                          pooled_size=3, output_dim=2, trans_std=0.1,
                                          no_trans=False, name='deformable_psroipool')
    ctx_list = _dtype_entries({'deformable_psroipool_data': (1, 18, 14, 14),
                               'deformable_psroipool_rois': (2, 5),
                               'deformable_psroipool_trans': (2, 4, 3, 3)},
                              [np.float64, np.float32, np.float16])
    _consistency(impl, make, ctx_list, scale=0.1, rtol=tol, atol=tol,
                 grad_req={'deformable_psroipool_data': 'write',
                           'deformable_psroipool_rois': 'null',
                           'deformable_psroipool_trans': 'write'}, arg_params=arg_params)


# -------------------------------------------------------------------------------------------
# DeformableConvolution, ModulatedDeformableConvolution
# -------------------------------------------------------------------------------------------

_CONV_TOL = {np.dtype(np.float32): 1e-1,
             np.dtype(np.float64): 1e-3}


def _conv_entries(data, offset):
    shapes = {'deformable_conv_data': data, 'deformable_conv_offset': offset}
    # since atomicAdd does not support fp16 (which deformable conv uses in backward), we do
    # not test fp16 here (MXNet's comment): float16 for ours only
    return (_dtype_entries(shapes, [np.float64, np.float32]),
            _dtype_entries(shapes, [np.float16]))


@pytest.mark.parametrize('impl', IMPLS)
def test_deformable_convolution_with_type(impl):
    """test_operator_gpu.py test_deformable_convolution_with_type (CPU entries)."""
    _seed(1238)
    tol = _CONV_TOL

    def make(ops):
        return ops.DeformableConvolution(num_filter=3, kernel=(3, 3), name='deformable_conv')
    ctx_list, half = _conv_entries((2, 2, 10, 10), (2, 18, 8, 8))
    _consistency(impl, make, ctx_list, half, scale=0.1, rtol=tol, atol=tol)
    # test ability to turn off training on bias
    _consistency(impl, make, ctx_list, half, scale=0.1, rtol=tol, atol=tol,
                 grad_req={'deformable_conv_data': 'write',
                           'deformable_conv_offset': 'write',
                           'deformable_conv_weight': 'write',
                           'deformable_conv_bias': 'null'})


@pytest.mark.parametrize('impl', IMPLS)
def test_deformable_convolution_options(impl):
    """test_operator_gpu.py test_deformable_convolution_options (CPU entries)."""
    _seed(1239)
    tol = _CONV_TOL
    cases = [
        # Pad > 0
        (dict(num_filter=3, kernel=(3, 3), pad=(1, 1)), (2, 2, 7, 7), (2, 18, 7, 7)),
        # Stride > 1
        (dict(num_filter=3, kernel=(3, 3), stride=(2, 2)), (2, 2, 7, 7), (2, 18, 3, 3)),
        # Dilate > 1
        (dict(num_filter=3, kernel=(3, 3), dilate=(2, 2)), (2, 2, 7, 7), (2, 18, 3, 3)),
        # Deformable group > 1
        (dict(num_filter=4, kernel=(3, 3), num_deformable_group=2), (2, 2, 7, 7),
         (2, 36, 5, 5)),
    ]
    for kwargs, data, offset in cases:
        ctx_list, half = _conv_entries(data, offset)
        _consistency(impl, lambda ops: ops.DeformableConvolution(name='deformable_conv',
                                                                 **kwargs),
                     ctx_list, half, scale=0.1, rtol=tol, atol=tol)


def _conv_numeric_gradient(impl, modulated):
    """test_operator.py test_deformable_convolution (and, with a mask, the check
    test_contrib_operator.py test_modulated_deformable_convolution prepares): numeric
    gradients of data, offset and weight; 3 of the 192 configurations."""
    ops = _ops(impl)
    for num_batch, num_channel_data, num_deformable_group, input_height, input_width, dilate, \
            grad_nodes in _covering([1, 2], [4, 8], [1, 2], [5, 6], [5, 6], [(1, 1), (2, 2)],
                                    [['im_data'], ['offset_data'], ['weight']]):
        output_height = input_height
        output_width = input_width
        im_data = np.random.rand(num_batch, num_channel_data, input_height, input_width)
        offset_data = \
            np.random.rand(num_batch, num_deformable_group * 3 * 3 * 2, output_height,
                           output_width) * 0.8 + 0.1
        if modulated:
            mask_data = np.random.rand(num_batch, num_deformable_group * 3 * 3, output_height,
                                       output_width)
            mask_data = 0.5 * (1 + np.tanh(0.5 * mask_data))  # sigmoid
        weight = np.random.normal(0, 0.001, (num_channel_data, num_channel_data, 3, 3))
        bias = np.zeros(num_channel_data)

        im_data_var = mx.symbol.Variable(name="im_data")
        offset_data_var = mx.symbol.Variable(name="offset_data")
        weight_var = mx.symbol.Variable(name="weight")
        bias_var = mx.symbol.Variable(name="bias")
        common = dict(name='test_op', data=im_data_var, offset=offset_data_var,
                      weight=weight_var, bias=bias_var, num_filter=num_channel_data, pad=dilate,
                      kernel=(3, 3), stride=(1, 1), dilate=dilate,
                      num_deformable_group=num_deformable_group)
        if modulated:
            mask_data_var = mx.symbol.Variable(name="mask_data")
            op = ops.ModulatedDeformableConvolution(mask=mask_data_var, **common)
            location = [im_data, offset_data, mask_data, weight, bias]
        else:
            op = ops.DeformableConvolution(**common)
            location = [im_data, offset_data, weight, bias]
        if grad_nodes[0] == 'offset_data':
            # wider tolerance needed for coordinate differential
            rtol, atol = 1.0, 1e-2
        else:
            rtol, atol = 0.05, 1e-3
        check_numeric_gradient(op, location, rtol=rtol, atol=atol, grad_nodes=grad_nodes,
                               ctx=mx.cpu(), numeric_eps=1.0 / 64)


@pytest.mark.parametrize('impl', IMPLS)
def test_deformable_convolution(impl):
    _seed(1240)
    _conv_numeric_gradient(impl, False)


_NO_CPU_BACKWARD = pytest.mark.xfail(
    raises=mx.base.MXNetError, strict=True,
    reason='MXNet 1.9.1 has no CPU backward for ModulatedDeformableConvolution')


@pytest.mark.parametrize('impl', [pytest.param('builtin', marks=_NO_CPU_BACKWARD), 'ours'])
def test_modulated_deformable_convolution(impl):
    _seed(1241)
    _conv_numeric_gradient(impl, True)


# -------------------------------------------------------------------------------------------
# gluon.contrib.cnn layers
# -------------------------------------------------------------------------------------------

@pytest.fixture
def gluon_ops(monkeypatch):
    """use(impl): the gluon contrib layers call F.contrib.X; for ours, mx.sym.contrib.X and
    mx.nd.contrib.X are ours while the test runs."""
    def use(impl):
        monkeypatch.undo()
        if impl == 'ours':
            for name in ('DeformableConvolution', 'ModulatedDeformableConvolution'):
                monkeypatch.setattr(mx.sym.contrib, name, getattr(dsym, name))
                monkeypatch.setattr(mx.nd.contrib, name, getattr(dnd, name))
    return use


def _gluon_net(layer):
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(
        layer(10, kernel_size=(3, 3), strides=1, padding=0),
        layer(10, kernel_size=(3, 2), strides=1, padding=0, activation='relu',
              offset_use_bias=False, use_bias=False),
        layer(10, kernel_size=(3, 2), strides=1, padding=0, activation='relu',
              offset_use_bias=False),
        layer(10, kernel_size=(3, 2), strides=1, padding=0, activation='relu',
              use_bias=False),
        layer(10, kernel_size=(3, 2), strides=1, padding=0, offset_use_bias=False,
              use_bias=False),
        layer(10, kernel_size=(3, 2), strides=1, padding=0, offset_use_bias=False),
        layer(12, kernel_size=(3, 2), strides=1, padding=0, use_bias=False),
        layer(12, kernel_size=(3, 2), strides=1, padding=0, use_bias=False,
              num_deformable_group=4),
    )
    return net


def _gluon_run(layer, backward, params=None):
    """test_gluon_contrib_gpu.py: forward (and backward) of the layers on mx.cpu(); the output,
    the parameter gradients and the parameters (to run the other implementation on). Without
    params: the built-in (new parameters), with params: ours (those parameters)."""
    params_in = params
    mx.random.seed(1242)
    net = _gluon_net(layer)
    ctx = mx.cpu()
    net.initialize(force_reinit=True, ctx=ctx)
    net.hybridize()
    x = mx.nd.random.uniform(shape=(8, 5, 30, 31), ctx=ctx)
    net(x)  # shapes of the deferred parameters
    items = list(net.collect_params().items())
    if params is None:
        # offsets of about a pixel: the layers start with zero offset weights otherwise
        for name, p in items:
            if 'offset' in name:
                p.set_data(mx.nd.random.normal(0, 0.05, p.shape))
        params = {name: p.data().copy() for name, p in items}
    for (name, p), value in zip(items, params.values()):
        p.set_data(value)
    with mx.autograd.record():
        y = net(x)
        if backward:
            y.backward()
    grads = [p.grad().asnumpy() for _, p in items if p.grad_req != 'null'] if backward else []
    graph = net._cached_graph[1].tojson()   # the operators the hybridized net runs
    assert ('"dcn_' in graph) == (params_in is not None), 'unexpected operators'
    return y.asnumpy(), grads, params


@pytest.mark.parametrize('impl', IMPLS)
def test_DeformableConvolution(impl, gluon_ops):
    """test_gluon_contrib_gpu.py test_DeformableConvolution on mx.cpu(); ours also against
    the built-in on the same parameters."""
    from mxnet.gluon.contrib.cnn import DeformableConvolution
    gluon_ops('builtin')
    ref, ref_grads, params = _gluon_run(DeformableConvolution, True)
    if impl == 'builtin':
        return
    gluon_ops('ours')
    out, grads, _ = _gluon_run(DeformableConvolution, True, params)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(r).max()))


@pytest.mark.parametrize('impl', [pytest.param('builtin', marks=_NO_CPU_BACKWARD), 'ours'])
def test_ModulatedDeformableConvolution(impl, gluon_ops):
    """test_gluon_contrib_gpu.py test_ModulatedDeformableConvolution on mx.cpu(), with
    ModulatedDeformableConvolution layers; ours' forward also against the built-in's."""
    from mxnet.gluon.contrib.cnn import ModulatedDeformableConvolution
    gluon_ops('builtin')
    if impl == 'builtin':
        _gluon_run(ModulatedDeformableConvolution, True)
        return
    ref, _, params = _gluon_run(ModulatedDeformableConvolution, False)
    gluon_ops('ours')
    out, grads, _ = _gluon_run(ModulatedDeformableConvolution, True, params)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert grads and all(np.isfinite(g).all() for g in grads)
