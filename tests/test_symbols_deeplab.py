"""DeepLab networks: released names and shapes, the loss, the frozen upsampling, init."""
import importlib
import json
import os

import mxnet as mx
import numpy as np
import pytest

from dcn.config_deeplab import deeplab_default_config, load_deeplab_config
from dcn.symbols.deeplab import seg_softmax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, 'tests', 'data', 'released_params_fpn_deeplab.json')) as _f:
    SPEC = {k: v for k, v in json.load(_f).items() if 'deeplab' in k}
_SHARED = os.path.join(os.path.dirname(ROOT), 'shared', 'reference-configs')
if not os.path.isdir(_SHARED):
    _SHARED = '/work/shared/reference-configs'


def _net(name):
    return getattr(importlib.import_module('deeplab.symbols.' + name), name)()


def _cfg_for(entry):
    path = os.path.join(_SHARED, 'deeplab', os.path.basename(entry['config']))
    cfg = load_deeplab_config(path)
    assert cfg.symbol == entry['symbol'] and cfg.dataset.NUM_CLASSES == entry['num_classes']
    return cfg


def _attrs(sym, name):
    for node in json.loads(sym.tojson())['nodes']:
        if node['name'] == name:
            return node.get('attrs', {})
    raise KeyError(name)


def test_four_variants_listed():
    assert sorted(SPEC) == sorted(['resnet_v1_101_deeplab_cityscapes', 'resnet_v1_101_deeplab_voc',
                                   'resnet_v1_101_deeplab_dcn_cityscapes',
                                   'resnet_v1_101_deeplab_dcn_voc'])


@pytest.mark.parametrize('key', sorted(SPEC))
def test_released_names_and_shapes(key):
    entry = SPEC[key]
    cfg = _cfg_for(entry)
    net = _net(entry['symbol'])
    sym = net.get_symbol(cfg, is_train=False)
    args = sym.list_arguments()
    assert [a for a in args if a not in entry['arg_params']] == entry['inputs']
    assert sym.list_outputs() == entry['outputs']
    shapes = {k: tuple(v) for k, v in entry['input_shapes_used'].items()}
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(**shapes)
    got = {a: list(s) for a, s in zip(args, arg_shapes) if a not in entry['inputs']}
    assert got == entry['arg_params']
    assert {a: list(s) for a, s in zip(sym.list_auxiliary_states(), aux_shapes)} == \
        entry['aux_params']
    assert dict(zip(sym.list_outputs(), [list(s) for s in out_shapes])) == entry['output_shapes']
    # training symbol: inputs, outputs, the same learned parameters, lr_mult
    tr = entry['train']
    tsym = net.get_symbol(cfg, is_train=True)
    targs = tsym.list_arguments()
    assert [a for a in targs if a not in entry['arg_params']] == tr['inputs']
    assert tsym.list_outputs() == tr['outputs']
    a_s, o_s, x_s = tsym.infer_shape(**{k: tuple(v) for k, v in tr['input_shapes_used'].items()})
    assert {a: list(s) for a, s in zip(targs, a_s) if a not in tr['inputs']} == entry['arg_params']
    assert o_s[0] == tuple(tr['input_shapes_used']['label'][:1] + [entry['num_classes']] +
                           tr['input_shapes_used']['label'][2:])
    attr = tsym.attr_dict()
    lr = {a: float(attr[a]['__lr_mult__']) for a in targs
          if a in attr and '__lr_mult__' in attr[a]}
    assert {a: v for a, v in lr.items() if v != 1.0} == \
        {a: v for a, v in tr['lr_mult'].items() if v != 1.0}
    assert set(lr) == set(tr['lr_mult'])
    # the deformable layers and their offsets as the original
    if 'dcn' in entry['symbol']:
        for blk in 'abc':
            a = _attrs(tsym, 'res5%s_branch2b' % blk)
            assert a['num_deformable_group'] == '1' and a['dilate'] == '(2, 2)' and \
                a['pad'] == '(2, 2)' and a['no_bias'] == 'True'
            o = _attrs(tsym, 'res5%s_branch2b_offset' % blk)
            assert o['num_filter'] == '18' and o['pad'] == '(1, 1)' and o['dilate'] == '(1, 1)'
    up = _attrs(tsym, 'upsampling')
    assert up['kernel'] == '(32, 32)' and up['stride'] == '(16, 16)' and \
        up['num_group'] == str(entry['num_classes']) and up['no_bias'] == 'True'
    assert _attrs(tsym, 'croped_score')['offset'] == '(8, 8)'
    sm = _attrs(tsym, 'softmax')
    assert sm['ignore_label'] == '255' and sm['use_ignore'] == 'True' and \
        sm['multi_output'] == 'True' and sm['normalization'] == 'valid'
    assert _attrs(sym, 'softmax') == sm


def test_rfcn_offsets_keep_their_dilation():
    from dcn.config import load_config
    net = importlib.import_module('rfcn.symbols.resnet_v1_101_rfcn_dcn').resnet_v1_101_rfcn_dcn()
    cfg = load_config(os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs',
                                   'resnet_v1_101_coco_trainval_rfcn_dcn_end2end_ohem.yaml'))
    sym = net.get_symbol(cfg, is_train=True)
    o = _attrs(sym, 'res5a_branch2b_offset')
    assert o['num_filter'] == '72' and o['dilate'] == '(2, 2)' and o['pad'] == '(2, 2)'
    assert '__lr_mult__' not in sym.attr_dict().get('res5a_branch2b_offset_weight', {})


def test_loss_gradient_is_zero_at_ignored_pixels():
    rng = np.random.RandomState(0)
    n, c, h, w = 1, 4, 5, 6
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    label = rng.randint(0, c, size=(n, 1, h, w)).astype(np.float32)
    label[0, 0, :2] = 255
    sym = seg_softmax(mx.sym.Variable('x'), mx.sym.Variable('label'))
    ex = sym.simple_bind(mx.cpu(), x=x.shape, label=label.shape, grad_req={'x': 'write',
                                                                             'label': 'null'})
    ex.forward(is_train=True, x=x, label=label)
    ex.backward()
    g = ex.grad_dict['x'].asnumpy()
    assert (g[:, :, :2] == 0).all()
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(p)
    lab = label[:, 0].astype(int)
    for i in range(h):
        for j in range(w):
            if lab[0, i, j] != 255:
                onehot[0, lab[0, i, j], i, j] = 1
    valid = (lab != 255).sum()
    want = (p - onehot) / valid
    want[:, :, :2] = 0
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)


def _small_cfg(num_classes=3):
    cfg = deeplab_default_config()
    cfg.dataset.NUM_CLASSES = num_classes
    cfg.network.pretrained = ''
    return cfg


@pytest.mark.parametrize('name', ['resnet_v1_18_deeplab', 'resnet_v1_18_deeplab_dcn'])
def test_small_network_ignores_label_255(name):
    cfg = _small_cfg()
    net = _net(name)
    sym = net.get_symbol(cfg, is_train=True)
    arg, aux = net.init_weight(cfg, {}, {})
    shape = (1, 3, 48, 64)
    ex = sym.simple_bind(mx.cpu(), data=shape, label=(1, 1, 48, 64),
                         grad_req={a: ('null' if a in ('data', 'label') else 'write')
                                   for a in sym.list_arguments()})
    for k, v in arg.items():
        v.copyto(ex.arg_dict[k])
    for k, v in aux.items():
        v.copyto(ex.aux_dict[k])
    data = np.random.RandomState(1).normal(size=shape).astype(np.float32)

    def grads(label):
        ex.forward(is_train=True, data=data, label=label)
        ex.backward()
        return {k: g.asnumpy().copy() for k, g in ex.grad_dict.items() if g is not None}

    all_ignored = grads(np.full((1, 1, 48, 64), 255, np.float32))
    assert all(np.abs(g).max() == 0 for g in all_ignored.values())
    lab = np.random.RandomState(2).randint(0, 3, size=(1, 1, 48, 64)).astype(np.float32)
    some = grads(lab)
    assert np.abs(some['score_weight']).max() > 0 and np.abs(some['conv1_weight']).max() > 0
    assert ex.outputs[0].shape == (1, 3, 48, 64)


def _bilinear(shape):
    # the original's rule (mx.init.Initializer._init_bilinear), written out
    k = shape[3]
    f = np.ceil(k / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    w = np.zeros(int(np.prod(shape)), np.float32)
    for i in range(w.size):
        x = i % k
        y = (i // k) % shape[2]
        w[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return w.reshape(shape)


def test_init_weight_rules():
    cfg = _small_cfg(5)
    net = _net('resnet_v1_18_deeplab_dcn')
    arg, aux = net.init_weight(cfg, {}, {})
    np.testing.assert_allclose(arg['upsampling_weight'].asnumpy(), _bilinear((5, 1, 32, 32)))
    for blk in 'ab':
        assert np.abs(arg['res5%s_branch2b_offset_weight' % blk].asnumpy()).max() == 0
        assert np.abs(arg['res5%s_branch2b_offset_bias' % blk].asnumpy()).max() == 0
    assert abs(arg['score_weight'].asnumpy().std() - 0.01) < 0.002
    assert np.abs(arg['fc6_bias'].asnumpy()).max() == 0
    # with a pretrained backbone fc6 is N(0, 0.01) as the original, and the backbone must be given
    cfg.network.pretrained = 'model/pretrained_model/resnet'
    backbone = {k: v for k, v in arg.items()
                if not k.startswith(('fc6', 'score', 'upsampling')) and '_offset' not in k}
    arg2, _ = net.init_weight(cfg, dict(backbone), dict(aux))
    assert abs(arg2['fc6_weight'].asnumpy().std() - 0.01) < 0.001
    with pytest.raises(KeyError, match='backbone'):
        net.init_weight(cfg, {}, {})
    with pytest.raises(ValueError, match='score_weight'):
        net.init_weight(cfg, dict(backbone, score_weight=mx.nd.zeros((2, 2))), dict(aux))
    fixed = net.get_fixed_params(cfg)
    assert 'conv1_weight' in fixed and 'res2a_branch2a_weight' in fixed and \
        'bn3a_branch2a_gamma' in fixed and 'res3a_branch2a_weight' not in fixed
    assert 'fc6_weight' not in fixed and 'upsampling_weight' not in fixed


def test_upsampling_stays_bilinear_under_sgd():
    cfg = _small_cfg(3)
    net = _net('resnet_v1_18_deeplab')
    sym = net.get_symbol(cfg, is_train=True)
    arg, aux = net.init_weight(cfg, {}, {})
    up0 = arg['upsampling_weight'].asnumpy().copy()
    score0 = arg['score_weight'].asnumpy().copy()
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['label'], context=mx.cpu())
    mod.bind(data_shapes=[('data', (1, 3, 48, 48))], label_shapes=[('label', (1, 1, 48, 48))])
    mod.init_params(arg_params=arg, aux_params=aux)
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.05,
                                                          'momentum': 0.9, 'wd': 5e-4})
    rng = np.random.RandomState(0)
    for _ in range(3):
        batch = mx.io.DataBatch(
            data=[mx.nd.array(rng.normal(size=(1, 3, 48, 48)))],
            label=[mx.nd.array(rng.randint(0, 3, size=(1, 1, 48, 48)))])
        mod.forward(batch, is_train=True)
        mod.backward()
        mod.update()
    a, _ = mod.get_params()
    np.testing.assert_array_equal(a['upsampling_weight'].asnumpy(), up0)
    np.testing.assert_allclose(up0, _bilinear(up0.shape))
    assert np.abs(a['score_weight'].asnumpy() - score0).max() > 0


def test_bad_config_is_an_error():
    cfg = _small_cfg(1)
    with pytest.raises(ValueError, match='NUM_CLASSES'):
        _net('resnet_v1_18_deeplab').get_symbol(cfg)
