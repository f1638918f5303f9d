"""Network symbols: released parameter names/shapes, outputs, losses, initialisation."""
import importlib
import json
import os

import mxnet as mx
import numpy as np
import pytest

from dcn.config import load_config, update_config
from dcn.symbols import heads, resnet
from dcn.modeling.meta_arch import builtin_sym_ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A copy of the compatibility spec of the released models travels with the tests.
SPEC = os.path.join(ROOT, 'tests', 'data', 'released_params_coco.json')
LIB = os.path.join(ROOT, 'lib', 'dcn', 'ops', 'libdcn_ops.so')

COCO_CFGS = {
    'resnet_v1_101_rfcn': 'rfcn/cfgs/resnet_v1_101_coco_trainval_rfcn_end2end_ohem.yaml',
    'resnet_v1_101_rfcn_dcn': 'rfcn/cfgs/resnet_v1_101_coco_trainval_rfcn_dcn_end2end_ohem.yaml',
    'resnet_v1_101_rcnn': 'faster_rcnn/cfgs/resnet_v1_101_coco_trainval_rcnn_end2end.yaml',
    'resnet_v1_101_rcnn_dcn': 'faster_rcnn/cfgs/resnet_v1_101_coco_trainval_rcnn_dcn_end2end.yaml',
}
VOC_CFGS = {
    'resnet_v1_101_rfcn': 'rfcn/cfgs/resnet_v1_101_voc0712_rfcn_end2end_ohem.yaml',
    'resnet_v1_101_rfcn_dcn': 'rfcn/cfgs/resnet_v1_101_voc0712_rfcn_dcn_end2end_ohem.yaml',
    'resnet_v1_101_rcnn': 'faster_rcnn/cfgs/resnet_v1_101_voc0712_rcnn_end2end.yaml',
    'resnet_v1_101_rcnn_dcn': 'faster_rcnn/cfgs/resnet_v1_101_voc0712_rcnn_dcn_end2end.yaml',
}
# False (our compiled operators) only where the library has been built
BUILTIN_MODES = [True] + ([False] if os.path.isfile(LIB) else [])


def _cfg(rel, builtin=True):
    cfg = load_config(os.path.join(ROOT, 'experiments', rel))
    return update_config(cfg, {'network': {'BUILTIN_OPS': builtin}})


def _network(cfg):
    pkg = 'faster_rcnn' if '_rcnn' in cfg.symbol else 'rfcn'
    module = importlib.import_module('%s.symbols.%s' % (pkg, cfg.symbol))
    return getattr(module, cfg.symbol)()


def _shapes(sym, **inputs):
    args, outs, auxs = sym.infer_shape(**inputs)
    arg = {n: list(s) for n, s in zip(sym.list_arguments(), args) if n not in inputs}
    aux = {n: list(s) for n, s in zip(sym.list_auxiliary_states(), auxs)}
    return arg, dict(zip(sym.list_outputs(), outs)), aux


@pytest.fixture(scope='module')
def spec():
    with open(SPEC) as f:
        return json.load(f)


# ------------------------------------------------------------------------- released networks
@pytest.mark.parametrize('builtin', BUILTIN_MODES)
@pytest.mark.parametrize('name', sorted(COCO_CFGS))
def test_coco_test_network_matches_released_params(spec, name, builtin):
    cfg = _cfg(COCO_CFGS[name], builtin)
    assert cfg.symbol == name
    sym = _network(cfg).get_symbol(cfg, is_train=False)
    assert sym.list_outputs() == ['rois_output', 'cls_prob_reshape_output',
                                  'bbox_pred_reshape_output']
    assert [n for n in sym.list_arguments() if n in ('data', 'im_info')] == ['data', 'im_info']
    arg, out, aux = _shapes(sym, data=(1, 3, 600, 1000), im_info=(1, 3))
    want_arg, want_aux = spec[name]['arg_params'], spec[name]['aux_params']
    assert sorted(set(want_arg) - set(arg)) == []
    assert sorted(set(arg) - set(want_arg)) == []
    assert {k: v for k, v in arg.items() if want_arg[k] != v} == {}
    assert aux == want_aux
    nreg = 4 * (2 if '_rfcn' in name else 81)
    post = cfg.TEST.RPN_POST_NMS_TOP_N
    assert out['rois_output'] == (post, 5)
    assert out['cls_prob_reshape_output'] == (1, post, 81)
    assert out['bbox_pred_reshape_output'] == (1, post, nreg)


@pytest.mark.parametrize('name', sorted(VOC_CFGS))
def test_voc_network_same_names_class_dependent_shapes(spec, name):
    cfg = _cfg(VOC_CFGS[name])
    sym = _network(cfg).get_symbol(cfg, is_train=False)
    arg, out, aux = _shapes(sym, data=(1, 3, 600, 1000), im_info=(1, 3))
    coco_arg = spec[name]['arg_params']
    assert sorted(arg) == sorted(coco_arg)
    assert sorted(aux) == sorted(spec[name]['aux_params'])
    # independently derived class/anchor-dependent shapes: 21 classes, 9 anchors
    expect = {'rpn_cls_score_weight': [18, 512, 1, 1], 'rpn_bbox_pred_weight': [36, 512, 1, 1]}
    if '_rfcn' in name:
        expect['rfcn_cls_weight'] = [7 * 7 * 21, 1024, 1, 1]
        expect['rfcn_bbox_weight'] = [7 * 7 * 8, 1024, 1, 1]
        if name.endswith('dcn'):
            expect['rfcn_cls_offset_t_weight'] = [2 * 7 * 7 * 21, 1024, 1, 1]
            expect['rfcn_bbox_offset_t_weight'] = [2 * 7 * 7, 1024, 1, 1]
    else:
        expect['cls_score_weight'] = [21, 1024]
        expect['bbox_pred_weight'] = [84, 1024]
    for k, v in expect.items():
        assert arg[k] == v, k
    # everything else is identical to COCO
    dependent = {k for k in coco_arg if k.rsplit('_', 1)[0] in
                 {e.rsplit('_', 1)[0] for e in expect}}
    for k in coco_arg:
        if k not in dependent:
            assert arg[k] == coco_arg[k], k
    assert out['cls_prob_reshape_output'][2] == 21


def test_backbone_structure_resnet101():
    """res5 runs at stride 16; block names follow the Caffe ResNet-101 convention."""
    data = mx.sym.var('data')
    conv4 = resnet.resnet_conv4(data, resnet.RESNET_V1_101, False)
    conv5 = resnet.resnet_conv5(conv4, resnet.RESNET_V1_101, False)
    _, (s4,), _ = conv4.infer_shape(data=(1, 3, 608, 1008))
    _, (s5,), _ = conv5.infer_shape(data=(1, 3, 608, 1008))
    assert s4 == (1, 1024, 38, 63) and s5 == (1, 2048, 38, 63)
    names = conv5.list_arguments()
    assert 'res4b22_branch2c_weight' in names and 'res4b23_branch2a_weight' not in names
    assert 'res3b3_branch2a_weight' in names and 'res3c_branch2a_weight' not in names
    assert 'res5c_branch2b_weight' in names and 'res5b1_branch2b_weight' not in names
    bn = [n for n in conv5.get_internals().list_outputs() if n == 'bn5c_branch2b_output']
    assert bn == ['bn5c_branch2b_output']
    attrs = conv5.attr_dict()
    assert attrs['res5a_branch2b']['dilate'] == '(2, 2)'
    assert attrs['res5a_branch1']['stride'] == '(1, 1)'
    assert attrs['bn5a_branch2b']['use_global_stats'] == 'True'
    assert attrs['bn5a_branch2b']['fix_gamma'] == 'False'
    assert float(attrs['bn5a_branch2b']['eps']) == 1e-5


def test_spec_validation():
    with pytest.raises(ValueError, match='block'):
        resnet.ResNetSpec('wide', (1, 1, 1, 1), (8, 8, 8, 8))
    with pytest.raises(ValueError, match='units'):
        resnet.ResNetSpec('basic', (1, 1, 1), (8, 8, 8, 8))
    cfg = _cfg(COCO_CFGS['resnet_v1_101_rfcn'])
    bad = update_config(cfg, {'network': {'RCNN_FEAT_STRIDE': 8}})
    with pytest.raises(ValueError, match='RCNN_FEAT_STRIDE'):
        _network(bad).get_symbol(bad, is_train=False)


# ------------------------------------------------------------------------- deformable res5
def test_deformable_res5_with_zero_offsets_equals_plain_res5():
    spec = resnet.ResNetSpec('basic', (1, 1, 1, 2), (8, 8, 16, 16), 8, frozen_bn=True)
    data = mx.sym.var('data')
    ops = builtin_sym_ops()
    plain = resnet.resnet_conv5(resnet.resnet_conv4(data, spec, False), spec, False)
    deform = resnet.resnet_conv5(resnet.resnet_conv4(data, spec, False), spec, False,
                                 deformable=True, sym_ops=ops)
    offsets = [n for n in deform.list_arguments() if n.endswith('_offset_weight')]
    assert offsets == ['res5a_branch2b_offset_weight', 'res5b_branch2b_offset_weight']
    shape = (1, 3, 96, 96)
    rng = np.random.RandomState(0)
    a_shapes, _, x_shapes = plain.infer_shape(data=shape)
    args = {n: mx.nd.array(rng.normal(0, 0.2, s)) for n, s in zip(plain.list_arguments(), a_shapes)}
    auxs = {n: mx.nd.array(rng.uniform(0.5, 1.5, s)) for n, s in
            zip(plain.list_auxiliary_states(), x_shapes)}
    d_shapes, _, _ = deform.infer_shape(data=shape)
    dargs = dict(args)
    for n, s in zip(deform.list_arguments(), d_shapes):
        if 'offset' in n:
            dargs[n] = mx.nd.zeros(s)
            assert s[0] == 2 * 9 * 4
    out_p = plain.bind(mx.cpu(), args, aux_states=auxs).forward()[0].asnumpy()
    out_d = deform.bind(mx.cpu(), dargs, aux_states=auxs).forward()[0].asnumpy()
    assert out_p.shape == (1, 16, 6, 6)
    np.testing.assert_allclose(out_d, out_p, rtol=1e-4, atol=1e-4)
    # non-zero offsets change the result
    dargs['res5a_branch2b_offset_bias'] = mx.nd.ones(dargs['res5a_branch2b_offset_bias'].shape)
    out_m = deform.bind(mx.cpu(), dargs, aux_states=auxs).forward()[0].asnumpy()
    assert np.abs(out_m - out_p).max() > 1e-3


# ------------------------------------------------------------------------- heads and losses
def test_rpn_probability_pairs_background_and_foreground_channels():
    A, H, W = 3, 4, 5
    score = mx.sym.var('score')
    prob = heads.rpn_test_prob(score, A)
    x = np.random.RandomState(1).normal(0, 2, (1, 2 * A, H, W)).astype(np.float32)
    out = prob.eval(ctx=mx.cpu(), score=mx.nd.array(x))[0].asnumpy()
    assert out.shape == (1, 2 * A, H, W)
    fg = np.exp(x[:, A:]) / (np.exp(x[:, :A]) + np.exp(x[:, A:]))
    np.testing.assert_allclose(out[:, A:], fg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, :A], 1 - fg, rtol=1e-5, atol=1e-6)


def _smooth_l1(x, sigma):
    s2 = sigma * sigma
    return np.where(np.abs(x) < 1.0 / s2, 0.5 * s2 * x * x, np.abs(x) - 0.5 / s2)


def _smooth_l1_grad(x, sigma):
    s2 = sigma * sigma
    return np.where(np.abs(x) < 1.0 / s2, s2 * x, np.sign(x))


def test_rpn_losses_values_and_gradients():
    cfg = _cfg(COCO_CFGS['resnet_v1_101_rfcn_dcn'])
    A, H, W = 2, 3, 4
    rng = np.random.RandomState(2)
    names = ['score', 'pred', 'label', 'target', 'weight']
    syms = [mx.sym.var(n) for n in names]
    cls_prob, bbox_loss, act = heads.rpn_train_outputs(cfg, *syms, num_anchors=A)
    net = mx.sym.Group([cls_prob, bbox_loss])
    vals = {'score': rng.normal(0, 1, (1, 2 * A, H, W)),
            'pred': rng.normal(0, 0.3, (1, 4 * A, H, W)),
            'label': rng.randint(-1, 2, (1, A * H * W)),
            'target': rng.normal(0, 0.3, (1, 4 * A, H, W)),
            'weight': rng.randint(0, 2, (1, 4 * A, H, W))}
    args = {k: mx.nd.array(v) for k, v in vals.items()}
    grads = {k: mx.nd.zeros(v.shape) for k, v in vals.items() if k in ('score', 'pred')}
    ex = net.bind(mx.cpu(), args, args_grad=grads, grad_req={k: ('write' if k in grads else 'null')
                                                             for k in names})
    prob, loss = [o.asnumpy() for o in ex.forward(is_train=True)]
    diff = vals['pred'] - vals['target']
    np.testing.assert_allclose(loss, vals['weight'] * _smooth_l1(diff, 3.0), rtol=1e-5, atol=1e-6)
    ex.backward()
    np.testing.assert_allclose(grads['pred'].asnumpy(),
                               vals['weight'] * _smooth_l1_grad(diff, 3.0) / cfg.TRAIN.RPN_BATCH_SIZE,
                               rtol=1e-4, atol=1e-7)
    # softmax over (background, foreground) pairs; 'valid' normalisation ignores label -1
    s = vals['score'].reshape(1, 2, A * H, W)
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prob, p, rtol=1e-5, atol=1e-6)
    lab = vals['label'].reshape(1, A * H, W)
    onehot = np.stack([(lab == 0), (lab == 1)], axis=1).astype(np.float64)
    valid = (lab >= 0)[:, None]
    want = (p - onehot) * valid / max(1, (lab >= 0).sum())
    np.testing.assert_allclose(grads['score'].asnumpy().reshape(want.shape), want,
                               rtol=1e-4, atol=1e-6)
    # the proposal layer receives the same probabilities, shaped (1, 2A, H, W)
    out = act.bind(mx.cpu(), {'score': args['score']}).forward()[0].asnumpy()
    np.testing.assert_allclose(out.reshape(p.shape), p, rtol=1e-5, atol=1e-6)


def test_rcnn_losses_without_ohem():
    cfg = _cfg(COCO_CFGS['resnet_v1_101_rcnn'])
    cfg = update_config(cfg, {'dataset': {'NUM_CLASSES': 3}, 'TRAIN': {'BATCH_ROIS': 4}})
    R, C = 4, 3
    rng = np.random.RandomState(3)
    names = ['cls_score', 'bbox_pred', 'label', 'bbox_target', 'bbox_weight']
    cls_prob, bbox_loss, label_out = heads.rcnn_train_outputs(cfg, *[mx.sym.var(n) for n in names])
    net = mx.sym.Group([cls_prob, bbox_loss, mx.sym.BlockGrad(label_out)])
    vals = {'cls_score': rng.normal(0, 1, (R, C)), 'bbox_pred': rng.normal(0, 1, (R, 4 * C)),
            'label': np.array([0, 1, 2, 1]), 'bbox_target': rng.normal(0, 1, (R, 4 * C)),
            'bbox_weight': rng.randint(0, 2, (R, 4 * C))}
    args = {k: mx.nd.array(v) for k, v in vals.items()}
    grads = {k: mx.nd.zeros(vals[k].shape) for k in ('cls_score', 'bbox_pred')}
    ex = net.bind(mx.cpu(), args, args_grad=grads,
                  grad_req={k: ('write' if k in grads else 'null') for k in names})
    prob, loss, lab = [o.asnumpy() for o in ex.forward(is_train=True)]
    assert prob.shape == (1, R, C) and loss.shape == (1, R, 4 * C) and lab.shape == (1, R)
    np.testing.assert_array_equal(lab[0], vals['label'])
    ex.backward()
    s = vals['cls_score']
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    np.testing.assert_allclose(prob[0], p, rtol=1e-5, atol=1e-6)
    # 'valid' normalisation (the original's): gradient divided by the number of RoIs
    np.testing.assert_allclose(grads['cls_score'].asnumpy(),
                               (p - np.eye(C)[vals['label']]) / R, rtol=1e-4, atol=1e-6)
    diff = vals['bbox_pred'] - vals['bbox_target']
    np.testing.assert_allclose(loss[0], vals['bbox_weight'] * _smooth_l1(diff, 1.0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads['bbox_pred'].asnumpy(),
                               vals['bbox_weight'] * _smooth_l1_grad(diff, 1.0) / 4,
                               rtol=1e-4, atol=1e-7)
    # a slot labelled -1 (padding gt row with BATCH_ROIS -1) has no gradient and is not
    # counted: the others are divided by the 3 valid labels
    args['label'] = mx.nd.array([0, 1, -1, 1])
    ex = net.bind(mx.cpu(), args, args_grad=grads,
                  grad_req={k: ('write' if k in grads else 'null') for k in names})
    ex.forward(is_train=True)
    ex.backward()
    want = (p - np.eye(C)[[0, 1, 0, 1]]) / 3
    want[2] = 0
    np.testing.assert_allclose(grads['cls_score'].asnumpy(), want, rtol=1e-4, atol=1e-6)


def test_deformable_fc_head_structure():
    cfg = _cfg(COCO_CFGS['resnet_v1_101_rcnn_dcn'])
    cfg = update_config(cfg, {'dataset': {'NUM_CLASSES': 5}})
    conv5, rois = mx.sym.var('conv5'), mx.sym.var('rois')
    cls_score, bbox_pred = heads.fc2_head(conv5, rois, cfg, builtin_sym_ops(), True,
                                          conv_hidden=16, fc_hidden=32)
    net = mx.sym.Group([cls_score, bbox_pred])
    arg, out, _ = _shapes(net, conv5=(1, 40, 20, 20), rois=(6, 5))
    assert arg['offset_weight'] == [98, 16 * 49]
    assert arg['fc_new_1_weight'] == [32, 16 * 49]
    assert list(out.values()) == [(6, 5), (6, 20)]
    attrs = net.attr_dict()
    assert attrs['offset_weight']['__lr_mult__'] == '0.01'
    pool = attrs['deformable_roi_pool']
    assert (pool['group_size'], pool['output_dim'], pool['pooled_size']) == ('1', '16', '7')
    assert float(pool['trans_std']) == 0.1 and pool['sample_per_part'] == '4'
    assert attrs['offset_t']['no_trans'] == 'True'
    # zero offsets (the initial state of the offset branch) give the no_trans pooling
    rng = np.random.RandomState(4)
    feat = mx.nd.array(rng.uniform(0, 1, (1, 16, 20, 20)))
    boxes = mx.nd.array([[0, 10, 20, 200, 180], [0, 40, 40, 120, 300]])
    x = mx.sym.var('x')
    ops = builtin_sym_ops()
    t0 = ops.DeformablePSROIPooling(data=x, rois=rois, group_size=1, pooled_size=7,
                                    sample_per_part=4, no_trans=True, part_size=7,
                                    output_dim=16, spatial_scale=1 / 16.)
    t1 = ops.DeformablePSROIPooling(data=x, rois=rois, trans=mx.sym.zeros((2, 2, 7, 7)),
                                    group_size=1, pooled_size=7, sample_per_part=4,
                                    no_trans=False, part_size=7, output_dim=16,
                                    spatial_scale=1 / 16., trans_std=0.1)
    a = t0.eval(ctx=mx.cpu(), x=feat, rois=boxes)[0].asnumpy()
    b = t1.eval(ctx=mx.cpu(), x=feat, rois=boxes)[0].asnumpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------- init and fixed params
@pytest.mark.parametrize('name', sorted(COCO_CFGS))
def test_training_learning_rate_multipliers_as_the_original(name):
    # the original: R-FCN's conv_new_1 (weight and bias) at lr_mult 3.0, the deformable 2fc
    # offset layer at 0.01, nothing else; the optimizer reads them from the symbol
    cfg = _cfg(COCO_CFGS[name])
    sym = _network(cfg).get_symbol(cfg, is_train=True)
    expected = {}
    if '_rfcn' in name:
        expected = {'conv_new_1_weight': 3.0, 'conv_new_1_bias': 3.0}
    elif name.endswith('_dcn'):
        expected = {'offset_weight': 0.01, 'offset_bias': 0.01}
    attrs = sym.attr_dict()
    got = {n: float(attrs[n]['__lr_mult__']) for n in sym.list_arguments()
           if '__lr_mult__' in attrs.get(n, {})}
    assert got == expected
    params = [n for n in sym.list_arguments() if n not in
              ('data', 'im_info', 'gt_boxes', 'label', 'bbox_target', 'bbox_weight')]
    opt = mx.optimizer.create('sgd', sym=sym, learning_rate=0.1,
                              param_idx2name=dict(enumerate(params)))
    lrs = {n: opt._get_lr(i) for i, n in enumerate(params)}
    for n in params:
        assert abs(lrs[n] - 0.1 * expected.get(n, 1.0)) < 1e-12, n


def test_init_weight_heads_and_pretrained_backbone():
    cfg = _cfg(COCO_CFGS['resnet_v1_101_rfcn_dcn'])
    net = _network(cfg)
    arg_shapes, aux_shapes = net.param_shapes(cfg)
    heads_ = {'rpn_', 'conv_new_1', 'rfcn_', 'res5a_branch2b_offset', 'res5b_branch2b_offset',
              'res5c_branch2b_offset'}
    backbone = {k: mx.nd.full(tuple(s), 0.5) for k, s in arg_shapes.items()
                if not any(k.startswith(h) for h in heads_)}
    aux = {k: mx.nd.full(tuple(s), 0.25) for k, s in aux_shapes.items()}
    arg = dict(backbone)
    net.init_weight(cfg, arg, aux)
    assert sorted(arg) == sorted(arg_shapes)
    for k in backbone:
        assert arg[k] is backbone[k]
    for k, v in arg.items():
        assert tuple(v.shape) == tuple(arg_shapes[k]), k
    for k in ('rfcn_cls_offset_t_weight', 'rfcn_bbox_offset_t_weight',
              'res5a_branch2b_offset_weight', 'res5c_branch2b_offset_bias', 'rfcn_cls_bias'):
        assert not arg[k].asnumpy().any(), k
    std = arg['rfcn_cls_weight'].asnumpy().std()
    assert 0.009 < std < 0.011
    assert abs(arg['rfcn_cls_weight'].asnumpy().mean()) < 1e-3
    assert 0.009 < arg['rpn_conv_3x3_weight'].asnumpy().std() < 0.011
    # existing parameters with a wrong shape are rejected, naming the parameter
    arg['conv_new_1_weight'] = mx.nd.zeros((3, 3))
    with pytest.raises(ValueError, match='conv_new_1_weight'):
        net.init_weight(cfg, arg, aux)
    # a pretrained model lacking backbone parameters is an error
    del arg['conv_new_1_weight'], arg['res4b22_branch2c_weight']
    with pytest.raises(KeyError, match='res4b22_branch2c_weight'):
        net.init_weight(cfg, arg, aux)


def test_init_weight_from_scratch_small_rcnn():
    cfg = load_config(os.path.join(ROOT, 'experiments/faster_rcnn/cfgs/shapes_rcnn_dcn.yaml'))
    cfg = update_config(cfg, {'network': {'BUILTIN_OPS': True}})
    assert cfg.network.pretrained == ''
    net = _network(cfg)
    arg, aux = {}, {}
    net.init_weight(cfg, arg, aux)
    arg_shapes, aux_shapes = net.param_shapes(cfg)
    assert sorted(arg) == sorted(arg_shapes) and sorted(aux) == sorted(aux_shapes)
    w = arg['res3a_branch2a_weight'].asnumpy()
    fan_in = np.prod(w.shape[1:])
    assert abs(w.std() - np.sqrt(2.0 / fan_in)) < 0.15 * np.sqrt(2.0 / fan_in)
    assert (arg['bn3a_branch2a_gamma'].asnumpy() == 1).all()
    assert not arg['bn3a_branch2a_beta'].asnumpy().any()
    assert not aux['bn3a_branch2a_moving_mean'].asnumpy().any()
    assert (aux['bn3a_branch2a_moving_var'].asnumpy() == 1).all()
    assert not arg['offset_weight'].asnumpy().any()
    # bbox_pred and cls_score normal(0, 0.01), as the original's init_weight
    assert 0.009 < arg['bbox_pred_weight'].asnumpy().std() < 0.011
    assert 0.009 < arg['cls_score_weight'].asnumpy().std() < 0.011
    # deterministic for a given seed
    arg2 = {}
    net.init_weight(cfg, arg2, {})
    np.testing.assert_array_equal(arg2['res3a_branch2a_weight'].asnumpy(), w)


def test_fixed_params_follow_config():
    cfg = _cfg(COCO_CFGS['resnet_v1_101_rcnn'])
    fixed = set(_network(cfg).get_fixed_params(cfg))
    for name in ('conv1_weight', 'bn_conv1_gamma', 'res2c_branch2c_weight', 'bn4b3_branch2a_beta',
                 'bn5c_branch2c_gamma'):
        assert name in fixed
    for name in ('res3a_branch1_weight', 'res5a_branch2b_weight', 'rpn_conv_3x3_weight',
                 'fc_new_1_weight', 'bbox_pred_bias'):
        assert name not in fixed
    small = load_config(os.path.join(ROOT, 'experiments/rfcn/cfgs/shapes_rfcn_dcn.yaml'))
    small = update_config(small, {'network': {'BUILTIN_OPS': True}})
    assert _network(small).get_fixed_params(small) == []


# ------------------------------------------------------------------------- small networks
SMALL = ['rfcn/cfgs/shapes_rfcn_dcn.yaml', 'rfcn/cfgs/shapes_rfcn.yaml',
         'rfcn/cfgs/shapes_mini_rfcn_dcn.yaml', 'faster_rcnn/cfgs/shapes_rcnn_dcn.yaml',
         'faster_rcnn/cfgs/shapes_rcnn.yaml', 'faster_rcnn/cfgs/shapes_mini_rcnn_dcn.yaml']


def _rpn_feat_shape(sym, data_shape):
    internals = sym.get_internals()
    _, (shape,), _ = internals['rpn_cls_score_output'].infer_shape(data=data_shape)
    return shape


@pytest.mark.parametrize('rel', SMALL)
def test_small_networks_train_and_test_shapes(rel):
    cfg = _cfg(rel)
    net = _network(cfg)
    C, A = cfg.dataset.NUM_CLASSES, cfg.network.NUM_ANCHORS
    nreg = 2 if cfg.CLASS_AGNOSTIC else C
    test = net.get_symbol(cfg, is_train=False)
    _, out, _ = _shapes(test, data=(1, 3, 256, 320), im_info=(1, 3))
    assert out['cls_prob_reshape_output'][2] == C
    assert out['bbox_pred_reshape_output'][2] == 4 * nreg
    train = net.get_symbol(cfg, is_train=True)
    assert train.list_outputs() == ['rpn_cls_prob_output', 'rpn_bbox_loss_output',
                                    'cls_prob_reshape_output', 'bbox_loss_reshape_output',
                                    'rcnn_label_output']
    data_shape = (1, 3, 256, 320)
    _, _, fh, fw = _rpn_feat_shape(train, data_shape)
    assert (fh, fw) == (16, 20)
    arg, out, aux = _shapes(train, data=data_shape, im_info=(1, 3), gt_boxes=(1, 5, 5),
                            label=(1, A * fh * fw), bbox_target=(1, 4 * A, fh, fw),
                            bbox_weight=(1, 4 * A, fh, fw))
    outs = list(out.values())
    assert outs[0] == (1, 2, A * fh, fw)
    assert outs[1] == (1, 4 * A, fh, fw)
    R = outs[2][1]
    assert outs[2] == (1, R, C) and outs[3] == (1, R, 4 * nreg) and outs[4] == (1, R)
    test_arg, _, test_aux = _shapes(test, data=data_shape, im_info=(1, 3))
    assert arg == test_arg and aux == test_aux
    # trainable BatchNorm in training, moving statistics at test time
    assert train.attr_dict()['bn2a_branch2a']['use_global_stats'] == 'False'
    assert test.attr_dict()['bn2a_branch2a']['use_global_stats'] == 'True'


@pytest.mark.parametrize('builtin', BUILTIN_MODES)
def test_small_deformable_rfcn_forward_backward(builtin):
    cfg = _cfg('rfcn/cfgs/shapes_mini_rfcn_dcn.yaml', builtin)
    assert cfg.TRAIN.ENABLE_OHEM
    net = _network(cfg)
    sym = net.get_symbol(cfg, is_train=True)
    arg_params, aux_params = {}, {}
    net.init_weight(cfg, arg_params, aux_params)
    data_shape = (1, 3, 128, 160)
    _, _, fh, fw = _rpn_feat_shape(sym, data_shape)
    A = cfg.network.NUM_ANCHORS
    rng = np.random.RandomState(5)
    inputs = {
        'data': rng.uniform(-100, 100, data_shape),
        'im_info': np.array([[128, 160, 1.0]]),
        'gt_boxes': np.array([[[10, 12, 60, 70, 1], [80, 40, 150, 120, 3]]]),
        'label': rng.randint(-1, 2, (1, A * fh * fw)),
        'bbox_target': rng.normal(0, 0.5, (1, 4 * A, fh, fw)),
        'bbox_weight': rng.randint(0, 2, (1, 4 * A, fh, fw)),
    }
    shapes = {k: v.shape for k, v in inputs.items()}
    ex = sym.simple_bind(mx.cpu(), grad_req={n: ('null' if n in inputs else 'write')
                                             for n in sym.list_arguments()}, **shapes)
    for k, v in inputs.items():
        ex.arg_dict[k][:] = v
    for k, v in arg_params.items():
        ex.arg_dict[k][:] = v
    for k, v in aux_params.items():
        ex.aux_dict[k][:] = v
    outs = [o.asnumpy() for o in ex.forward(is_train=True)]
    ex.backward()
    rpn_prob, rpn_loss, cls_prob, bbox_loss, label = outs
    assert rpn_prob.shape == (1, 2, A * fh, fw)
    np.testing.assert_allclose(rpn_prob.sum(axis=1), 1.0, rtol=1e-4)
    R = cls_prob.shape[1]
    assert cls_prob.shape == (1, R, cfg.dataset.NUM_CLASSES) and label.shape == (1, R)
    np.testing.assert_allclose(cls_prob.sum(axis=2), 1.0, rtol=1e-4)
    kept = label[label >= 0]
    assert 0 < kept.size <= cfg.TRAIN.BATCH_ROIS_OHEM
    assert set(np.unique(kept)) <= set(range(cfg.dataset.NUM_CLASSES))
    for o in outs:
        assert np.isfinite(o).all()
    # gradients reach the backbone, both heads and the (zero-initialised) offset layers
    for name in ('conv1_weight', 'rfcn_cls_weight', 'rfcn_bbox_weight', 'rpn_bbox_pred_weight',
                 'res5b_branch2b_weight', 'res5a_branch2b_offset_weight',
                 'rfcn_cls_offset_t_weight', 'rfcn_bbox_offset_t_weight'):
        g = ex.grad_dict[name].asnumpy()
        assert np.isfinite(g).all() and np.abs(g).sum() > 0, name


# ------------------------------------------------------------------------- given proposals, demos
def demo_arg_channels(name, k, c):
    return {'rfcn_cls_bias': k * c, 'rfcn_bbox_bias': k * 4 * 2,
            'rfcn_cls_offset_t_bias': 2 * k * c, 'rfcn_bbox_offset_t_bias': 2 * k}[name]


def test_given_proposals_network_and_psroi_demo(spec):
    cfg = _cfg('rfcn/cfgs/deform_psroi_demo.yaml')
    assert not cfg.TEST.HAS_RPN
    net = _network(update_config(cfg, {'symbol': 'resnet_v1_101_rfcn_dcn'}))
    sym = net.get_symbol(cfg, is_train=False)
    assert sym.list_outputs() == ['cls_prob_reshape_output', 'bbox_pred_reshape_output']
    arg, out, aux = _shapes(sym, data=(1, 3, 320, 480), rois=(1, 17, 5))
    want = {k: v for k, v in spec['resnet_v1_101_rfcn_dcn']['arg_params'].items()
            if not k.startswith('rpn_')}
    assert sorted(arg) == sorted(want)
    assert list(out.values()) == [(1, 17, 21), (1, 17, 8)]
    demo = _network(cfg).get_symbol(cfg, is_train=False)
    assert demo.list_outputs() == ['rfcn_cls_offset_output', 'cls_prob_reshape_output',
                                   'bbox_pred_reshape_output']
    demo_arg, out, _ = _shapes(demo, data=(1, 3, 320, 480), rois=(1, 17, 5))
    # the original's demo network (model/deform_psroi-0000.params) pools 3 x 3 bins: its
    # score maps have 3*3 instead of 7*7 groups, everything else is the detector's
    assert list(out.values()) == [(17, 42, 3, 3), (1, 17, 21), (1, 17, 8)]
    k, c = 3 * 3, 21
    assert demo_arg.pop('rfcn_cls_weight') == [k * c, 1024, 1, 1]
    assert demo_arg.pop('rfcn_bbox_weight') == [k * 4 * 2, 1024, 1, 1]
    assert demo_arg.pop('rfcn_cls_offset_t_weight') == [2 * k * c, 1024, 1, 1]
    assert demo_arg.pop('rfcn_bbox_offset_t_weight') == [2 * k, 1024, 1, 1]
    for name in ('rfcn_cls_bias', 'rfcn_bbox_bias', 'rfcn_cls_offset_t_bias',
                 'rfcn_bbox_offset_t_bias'):
        assert demo_arg.pop(name) == [demo_arg_channels(name, k, c)]
    assert demo_arg == {n: s for n, s in want.items() if n in demo_arg}
    assert len(demo_arg) == len(want) - 8
    with pytest.raises(ValueError, match='is_train'):
        _network(cfg).get_symbol(cfg, is_train=True)


def test_deform_conv_demo_outputs_offsets(spec):
    cfg = _cfg('rfcn/cfgs/deform_conv_demo.yaml')
    sym = _network(cfg).get_symbol(cfg, is_train=False)
    assert sym.list_outputs() == ['res5a_branch2b_offset_output', 'res5b_branch2b_offset_output',
                                  'res5c_branch2b_offset_output']
    arg, out, aux = _shapes(sym, data=(1, 3, 320, 480))
    assert list(out.values()) == [(1, 72, 20, 30)] * 3
    released = spec['resnet_v1_101_rfcn_dcn']
    assert all(released['arg_params'][k] == v for k, v in arg.items())
    assert all(released['aux_params'][k] == v for k, v in aux.items())
    assert 'res5c_branch2b_offset_weight' in arg and 'res5c_branch2c_weight' not in arg


# ------------------------------------------------------------------------- fused offset branch
@pytest.mark.skipif(not os.path.isfile(LIB), reason='operator library not built (./init.sh)')
def test_cpu_test_network_fuses_offset_branch_with_same_detections():
    """One config gives one graph on every host; bound on the CPU (the predictor's rewrite),
    Deformable R-FCN's test network computes the class part-offset branch with the fused
    Conv1x1DeformablePSROIPooling (no 2*7*7*C-channel map). Same parameters, same outputs."""
    from dcn.engine.graph_rewrite import FUSE_MIN_OUTPUT_DIM
    from dcn.engine.predictor import prepare_for_context
    # 21 classes: 42 class-offset outputs per bin (fused); the 2 box-offset outputs are not
    cfg = update_config(_cfg('rfcn/cfgs/shapes_mini_rfcn_dcn.yaml', builtin=False),
                        {'dataset': {'NUM_CLASSES': 21}})
    assert 2 * 21 >= FUSE_MIN_OUTPUT_DIM > 2
    net = _network(cfg)
    plain = net.get_symbol(cfg, is_train=False)
    on_gpu_host = net.get_symbol(update_config(cfg, {'gpus': '0'}), is_train=False)
    assert plain.tojson() == on_gpu_host.tojson()          # the graph ignores the host
    fused = prepare_for_context(plain, [mx.cpu()])
    assert prepare_for_context(plain, [mx.gpu(0)]).tojson() == plain.tojson()

    def ops(sym):
        return [n['op'] for n in json.loads(sym.tojson())['nodes']]
    assert ops(fused).count('dcn_Conv1x1DeformablePSROIPooling') == 1
    assert ops(plain).count('dcn_Conv1x1DeformablePSROIPooling') == 0
    assert 'rfcn_cls_offset_t_output' not in fused.get_internals().list_outputs()
    assert 'rfcn_cls_offset_output' in fused.get_internals().list_outputs()
    assert 'rfcn_bbox_offset_t_output' in fused.get_internals().list_outputs()
    assert 'rfcn_cls_offset_t_output' in plain.get_internals().list_outputs()
    assert fused.list_arguments() == plain.list_arguments()
    assert fused.list_outputs() == plain.list_outputs()
    # the rewritten graph's variables feeding our operators declare their rank
    nodes = json.loads(fused.tojson())['nodes']
    for node in nodes:
        if node['op'] == 'dcn_Conv1x1DeformablePSROIPooling':
            for src, _, _ in node['inputs']:
                if nodes[src]['op'] == 'null' and nodes[src]['name'] != 'rois':
                    assert '__shape__' in nodes[src].get('attrs', {}), nodes[src]['name']

    arg_params, aux_params = {}, {}
    net.init_weight(cfg, arg_params, aux_params)
    rng = np.random.RandomState(3)
    for name in ('rfcn_cls_offset_t_weight', 'rfcn_bbox_offset_t_weight'):  # zero at init
        # offsets of about one RoI width (data +-100 makes the offset maps large)
        arg_params[name] = mx.nd.array(rng.normal(0, 1e-4, arg_params[name].shape))
    data = rng.uniform(-100, 100, (1, 3, 160, 192))
    results = []
    for sym in (fused, plain):
        ex = sym.simple_bind(mx.cpu(), grad_req='null', data=data.shape, im_info=(1, 3))
        ex.copy_params_from(arg_params, aux_params)
        ex.arg_dict['data'][:] = data
        ex.arg_dict['im_info'][:] = [[160, 192, 1.0]]
        outs = [o.asnumpy() for o in ex.forward(is_train=False)]
        results.append(outs)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert np.abs(results[0][2]).max() > 0


@pytest.mark.skipif(not os.path.isfile(LIB), reason='operator library not built (./init.sh)')
@pytest.mark.parametrize('rel', ['rfcn/cfgs/resnet_v1_101_coco_trainval_rfcn_dcn_end2end_ohem.yaml',
                                 'faster_rcnn/cfgs/shapes_mini_rcnn_dcn.yaml'])
def test_variables_feeding_our_operators_declare_their_rank(rel):
    """MXNet 1.9's shape inference for extension operators writes past its buffer for each
    input of unknown rank: every variable that feeds a dcn_* node (weights, biases; data
    and rois come from layers) is declared with the operator's rank for that input."""
    cfg = _cfg(rel, builtin=False)
    net = _network(cfg)
    checked = 0
    for is_train, gpus in ((False, ''), (True, ''), (False, '0')):
        sym = net.get_symbol(update_config(cfg, {'gpus': gpus}), is_train=is_train)
        nodes = json.loads(sym.tojson())['nodes']
        for node in nodes:
            if not node['op'].startswith('dcn_'):
                continue
            for src, _, _ in node['inputs']:
                var = nodes[src]
                if var['op'] != 'null':
                    continue
                shape = var.get('attrs', {}).get('__shape__')
                assert shape is not None, (node['name'], var['name'])
                rank = len([d for d in shape.strip('()').split(',') if d.strip()])
                assert rank == (1 if var['name'].endswith('_bias') else 4), (var['name'], shape)
                checked += 1
    assert checked >= 3
