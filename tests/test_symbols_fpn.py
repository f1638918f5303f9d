"""FPN networks: released parameter names/shapes, inputs, outputs, lr_mult (spec JSON),
image sides padded to multiples of 32, the shared RPN, config keys of the FPN files."""
import importlib
import json
import os

import mxnet as mx
import numpy as np
import pytest

import fpn  # noqa: F401  (registers the family's config keys)
from dcn.config import load_config, update_config
from dcn.modeling.fpn import fpn_level

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, 'tests', 'data', 'released_params_fpn_deeplab.json')
LIB = os.path.join(ROOT, 'lib', 'dcn', 'ops', 'libdcn_ops.so')
CFGS = {
    'resnet_v1_101_fpn_rcnn': 'resnet_v1_101_coco_trainval_fpn_end2end_ohem.yaml',
    'resnet_v1_101_fpn_dcn_rcnn': 'resnet_v1_101_coco_trainval_fpn_dcn_end2end_ohem.yaml',
}
pytestmark = pytest.mark.skipif(not os.path.isfile(LIB), reason='FPNROIPooling needs the '
                                'compiled operator library (./init.sh)')


def _cfg(name):
    return load_config(os.path.join(ROOT, 'experiments', 'fpn', 'cfgs', name))


def _network(symbol):
    return getattr(importlib.import_module('fpn.symbols.' + symbol), symbol)()


@pytest.fixture(scope='module')
def spec():
    with open(SPEC) as f:
        return json.load(f)


@pytest.mark.parametrize('name', sorted(CFGS))
def test_test_network_matches_released_params(spec, name):
    cfg = _cfg(CFGS[name])
    want = spec[name + '_coco']
    assert cfg.symbol == name == want['symbol']
    assert cfg.dataset.NUM_CLASSES == want['num_classes']
    sym = _network(name).get_symbol(cfg, is_train=False)
    assert [n for n in sym.list_arguments() if n not in want['arg_params']] == want['inputs']
    assert sym.list_outputs() == want['outputs']
    shapes = {k: tuple(v) for k, v in want['input_shapes_used'].items()}
    args, outs, auxs = sym.infer_shape(**shapes)
    arg = {n: list(s) for n, s in zip(sym.list_arguments(), args) if n not in shapes}
    assert arg == want['arg_params']
    assert dict(zip(sym.list_auxiliary_states(), map(list, auxs))) == want['aux_params']
    assert dict(zip(sym.list_outputs(), map(list, outs))) == want['output_shapes']


@pytest.mark.parametrize('name', sorted(CFGS))
def test_training_network_inputs_outputs_lr_mult(spec, name):
    cfg = _cfg(CFGS[name])
    want = spec[name + '_coco']['train']
    sym = _network(name).get_symbol(cfg, is_train=True)
    params = spec[name + '_coco']['arg_params']
    assert [n for n in sym.list_arguments() if n not in params] == want['inputs']
    assert sorted(n for n in sym.list_arguments() if n not in want['inputs']) == sorted(params)
    # the original's label BlockGrad is auto-named (blockgrad0 in a fresh process); the
    # shared metrics read it as rcnn_label (docs/DESIGN.md, "Network I/O")
    assert sym.list_outputs()[:4] == want['outputs'][:4]
    assert want['outputs'][4].startswith('blockgrad')
    assert sym.list_outputs()[4] == 'rcnn_label_output'
    shapes = {k: tuple(v) for k, v in want['input_shapes_used'].items()}
    _, outs, _ = sym.infer_shape(**shapes)
    out = dict(zip(sym.list_outputs(), outs))
    # all five levels' anchors: A * sum(H * W) at 800 x 1280
    assert out['rpn_cls_prob_output'] == (1, 2, shapes['label'][1])
    assert out['rpn_bbox_loss_output'] == shapes['bbox_target']
    lr = {n: float(a['__lr_mult__']) for n, a in sym.attr_dict().items() if '__lr_mult__' in a}
    assert lr == want['lr_mult']


def test_image_sides_must_be_multiples_of_32():
    cfg = _cfg(CFGS['resnet_v1_101_fpn_rcnn'])
    assert cfg.network.IMAGE_STRIDE == 32
    sym = _network('resnet_v1_101_fpn_rcnn').get_symbol(cfg, is_train=False)
    with pytest.raises(mx.base.MXNetError):
        sym.infer_shape(data=(1, 3, 600, 1000), im_info=(1, 3))


def test_rpn_weights_shared_across_levels():
    cfg = _cfg(CFGS['resnet_v1_101_fpn_rcnn'])
    sym = _network('resnet_v1_101_fpn_rcnn').get_symbol(cfg, is_train=False)
    internals = sym.get_internals()
    for lvl in ('p2', 'p3', 'p4', 'p5', 'p6'):
        node = internals['rpn_conv_%s_output' % lvl]
        assert node.list_arguments()[-2:] == ['rpn_conv_weight', 'rpn_conv_bias']
        score = internals['rpn_cls_score_%s_output' % lvl]
        assert score.list_arguments()[-2:] == ['rpn_cls_score_weight', 'rpn_cls_score_bias']
    assert not any(n.startswith('rpn_conv_3x3') for n in sym.list_arguments())


def test_fpn_config_keys():
    cfg = _cfg(CFGS['resnet_v1_101_fpn_dcn_rcnn'])
    assert cfg.network.RPN_FEAT_STRIDE == [4, 8, 16, 32, 64]
    assert cfg.TEST_SCALES == [[480, 800], [576, 900], [688, 1100], [800, 1200],
                               [1200, 1600], [1400, 2000]]
    assert cfg.TEST.USE_SOFTNMS is True and cfg.TEST.SOFTNMS_THRESH == 0.6
    assert cfg.SCALES == [800, 1280]
    with pytest.raises(ValueError, match='RPN_FEAT_STRIDE'):
        update_config(cfg, {'network': {'RPN_FEAT_STRIDE': 'x'}})
    # the strides must be the pyramid's
    bad = update_config(cfg, {'network': {'RPN_FEAT_STRIDE': [4, 8, 16, 32]}})
    with pytest.raises(ValueError, match='RPN_FEAT_STRIDE'):
        _network('resnet_v1_101_fpn_dcn_rcnn').get_symbol(bad, is_train=False)


def test_level_assignment_formula_on_hand_made_rois():
    # w = h = s: k = floor(2 + log2(s / 224)), clipped to [0, 3]
    rois = np.array([[0, 0, 0, 223, 223],      # 224^2 -> P4
                     [0, 0, 0, 111, 111],      # 112^2 -> P3
                     [0, 0, 0, 110, 110],      # below 112^2 -> P2
                     [0, 0, 0, 447, 447],      # 448^2 -> P5
                     [0, 0, 0, 2000, 2000],    # clipped to P5
                     [0, 0, 0, 3, 3]], np.float32)
    assert list(fpn_level(rois)) == [2, 1, 0, 3, 3, 0]


@pytest.mark.parametrize('symbol', ['resnet_v1_18_fpn_rcnn', 'resnet_v1_18_fpn_dcn_rcnn'])
def test_small_networks_init_and_forward(symbol):
    cfg = load_config(os.path.join(ROOT, 'experiments', 'fpn', 'cfgs', 'shapes_mini_fpn.yaml'))
    cfg = update_config(cfg, {'symbol': symbol})
    net = _network(symbol)
    arg, aux = net.init_weight(cfg, {}, {})
    if 'dcn' in symbol:
        assert float(np.abs(arg['offset_p3_weight'].asnumpy()).sum()) == 0.0
        assert float(np.abs(arg['res3b_branch2b_offset_weight'].asnumpy()).sum()) == 0.0
    sym = net.get_symbol(cfg, is_train=False)
    mod = mx.mod.Module(sym, data_names=['data', 'im_info'], label_names=None)
    mod.bind([('data', (1, 3, 320, 416)), ('im_info', (1, 3))], for_training=False)
    mod.init_params(arg_params=arg, aux_params=aux)
    im = np.random.RandomState(0).uniform(-1, 1, (1, 3, 320, 416)).astype(np.float32)
    mod.forward(mx.io.DataBatch([mx.nd.array(im), mx.nd.array([[320, 416, 1.0]])]),
                is_train=False)
    rois, prob, deltas = [o.asnumpy() for o in mod.get_outputs()]
    post = cfg.TEST.RPN_POST_NMS_TOP_N
    assert rois.shape == (post, 5) and prob.shape == (1, post, 6) and deltas.shape == (1, post, 24)
    assert np.allclose(prob.sum(axis=2), 1, atol=1e-5)
    assert (rois[:, 3] <= 415).all() and (rois[:, 4] <= 319).all()


_PYRAMID_CONVS = ['fpn_p%d' % k for k in range(2, 7)] + ['fpn_p%d_1x1' % k for k in range(2, 6)]


def test_pyramid_norm_only_in_the_shapes_networks():
    """The Shapes networks (trained from scratch) put a BatchNorm after each of the nine
    pyramid convolutions, starting at gamma 1, beta 0, mean 0, variance 1, also when the
    rest comes from a pretrained model; the released networks have none."""
    cfg = load_config(os.path.join(ROOT, 'experiments', 'fpn', 'cfgs', 'shapes_mini_fpn.yaml'))
    for symbol in ('resnet_v1_18_fpn_rcnn', 'resnet_v1_18_fpn_dcn_rcnn'):
        net = _network(symbol)
        c = update_config(cfg, {'symbol': symbol})
        args, auxs = net.param_shapes(c)
        bn = sorted(n for n in list(args) + list(auxs) if n.startswith('fpn_') and '_bn_' in n)
        assert bn == sorted('%s_bn_%s' % (conv, kind) for conv in _PYRAMID_CONVS
                            for kind in ('gamma', 'beta', 'moving_mean', 'moving_var'))
        # the BatchNorm follows its convolution: the test symbol's BN input is the conv
        nodes = json.loads(net.get_symbol(c, is_train=False).tojson())['nodes']
        for n in nodes:
            if n['op'] == 'BatchNorm' and n['name'].startswith('fpn_'):
                assert nodes[n['inputs'][0][0]]['name'] == n['name'][:-len('_bn')]
                assert n['attrs']['use_global_stats'] == 'True'
        # a "pretrained" model holding everything else: the BN layers are still created
        arg, aux = net.init_weight(c, {}, {})
        for name in bn:
            (arg if name in arg else aux).pop(name)
        c2 = update_config(c, {'network': {'pretrained': 'model/some_backbone'}})
        arg2, aux2 = net.init_weight(c2, arg, aux)
        for name in bn:
            value = (arg2 if name in arg2 else aux2)[name].asnumpy()
            expect = 1.0 if name.endswith(('_gamma', '_moving_var')) else 0.0
            assert value.shape == tuple((args if name in args else auxs)[name])
            assert np.all(value == expect), name
    for symbol in CFGS:
        cfg101 = _cfg(CFGS[symbol])
        args, auxs = _network(symbol).param_shapes(cfg101)
        assert not [n for n in list(args) + list(auxs) if '_bn_' in n and n.startswith('fpn_')]
