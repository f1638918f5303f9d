"""Bad parameter files and diverging training: clear errors, nothing good lost.

* A truncated file, random bytes, the parameters of another network or of the same network
  with other shapes, given to the tester, to the demo's loader or as ``network.pretrained``:
  an error naming the file and the first missing or mis-shaped parameter.
* A loss that becomes NaN/infinite stops training with a message naming the iteration, and
  the last good checkpoint (parameters and training state) is kept unchanged.
"""
import os
import re

import mxnet as mx
import numpy as np
import pytest

import dcn.layers  # noqa: F401  (registers the custom operators of the symbols)
from dcn.checkpoint import (last_epoch, list_epochs, load_param, load_training_state,
                            save_checkpoint)
from dcn.config import load_config, update_config
from dcn.train import TrainingDivergedError, get_symbol_instance, train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')
KINDS = ['truncated', 'random_bytes', 'other_network', 'mis_shaped']


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp('robust')
    data = str(root / 'data')
    cfg = update_config(load_config(MINI_CFG), {
        'output_path': str(root / 'out'),
        'dataset': {'root_path': data, 'dataset_path': os.path.join(data, 'shapes')},
        'TRAIN': {'end_epoch': 1}})
    from dcn.dataset import filter_roidb, load_gt_roidb
    _, roidb = load_gt_roidb(cfg, cfg.dataset.image_set, flip=False)
    return root, cfg, filter_roidb(roidb)


def _init_params(cfg, **network):
    """Complete from-scratch parameters of the network ``cfg`` (with overrides) describes."""
    network = dict({'pretrained': ''}, **network)
    top = {k: v for k, v in network.items() if k in ('symbol',)}
    net = {k: v for k, v in network.items() if k not in ('symbol', 'NUM_CLASSES')}
    cfg = update_config(cfg, dict(top, network=net))
    if 'NUM_CLASSES' in network:
        cfg = update_config(cfg, {'dataset': {'NUM_CLASSES': network['NUM_CLASSES']}})
    inst = get_symbol_instance('rfcn', cfg)
    inst.get_symbol(cfg, is_train=False)
    return inst.init_weight(cfg, {}, {})


def _write_bad(kind, cfg, prefix, epoch):
    """Write ``PREFIX-%04d.params`` of the given kind; returns its path and the parameters."""
    path = '%s-%04d.params' % (prefix, epoch)
    if kind in ('truncated', 'random_bytes'):
        arg, aux = _init_params(cfg)
        save_checkpoint(prefix, epoch, None, arg, aux)
        good = open(path, 'rb').read()
        bad = good[:len(good) // 2] if kind == 'truncated' else \
            np.random.RandomState(0).bytes(len(good))
        with open(path, 'wb') as f:
            f.write(bad)
        return path, None
    if kind == 'other_network':  # the plain R-FCN: no offset layers
        arg, aux = _init_params(cfg, symbol='resnet_v1_18_rfcn')
    else:  # same network, 4 classes instead of 6
        arg, aux = _init_params(cfg, NUM_CLASSES=4)
    save_checkpoint(prefix, epoch, None, arg, aux)
    return path, (arg, aux)


def _first_bad(sym, params, data_shapes):
    """First parameter of ``sym`` (in argument then auxiliary order) absent from ``params``
    or of another shape; computed from the symbol's own shape inference."""
    arg, aux = params
    arg_shapes, _, aux_shapes = sym.infer_shape(**dict(data_shapes))
    for names, shapes, have in ((sym.list_arguments(), arg_shapes, arg),
                                (sym.list_auxiliary_states(), aux_shapes, aux)):
        for name, shape in zip(names, shapes):
            if name in dict(data_shapes):
                continue
            if name not in have or tuple(have[name].shape) != tuple(shape):
                return name
    raise AssertionError('the parameters fit the network')


def _assert_names(message, path, param=None):
    assert path in message or os.path.basename(path) in message, message
    if param is not None:
        assert re.search(r'\b%s\b' % re.escape(param), message), (param, message)


@pytest.mark.parametrize('kind', KINDS)
def test_tester_rejects_bad_params_naming_file_and_parameter(base, tmp_path, kind):
    from dcn.tester import test_net
    _, cfg, _ = base
    prefix = str(tmp_path / 'model')
    path, params = _write_bad(kind, cfg, prefix, 1)
    with pytest.raises(ValueError) as info:
        test_net(cfg, 'rfcn', prefix, 1, output_dir=str(tmp_path / 'res'))
    expected = None
    if params is not None:
        sym = get_symbol_instance('rfcn', cfg).get_symbol(cfg, is_train=False)
        expected = _first_bad(sym, params, {'data': (1, 3, 320, 320), 'im_info': (1, 3)})
    _assert_names(str(info.value), path, expected)


@pytest.mark.parametrize('kind', KINDS)
def test_demo_loader_rejects_bad_params_naming_file_and_parameter(base, tmp_path, kind):
    from dcn.tools.demo import DemoError, load_model_params
    _, cfg, _ = base
    prefix = str(tmp_path / 'model')
    path, params = _write_bad(kind, cfg, prefix, 0)
    sym = get_symbol_instance('rfcn', cfg).get_symbol(cfg, is_train=False)
    shapes = [('data', (1, 3, 256, 320)), ('im_info', (1, 3))]
    with pytest.raises((DemoError, ValueError)) as info:
        load_model_params(prefix, 0, sym, shapes)
    _assert_names(str(info.value), path,
                  None if params is None else _first_bad(sym, params, shapes))


def test_load_checkpoint_rejects_corrupt_symbol_file(tmp_path):
    from dcn.checkpoint import load_checkpoint
    prefix = str(tmp_path / 'model')
    save_checkpoint(prefix, 1, mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=2),
                    {'fullyconnected0_weight': mx.nd.ones((2, 3))}, {})
    with open(prefix + '-symbol.json', 'r+') as f:
        text = f.read()
        f.seek(0)
        f.write(text[:len(text) // 2])
        f.truncate()
    with pytest.raises(ValueError, match=re.escape(prefix + '-symbol.json')):
        load_checkpoint(prefix, 1)


@pytest.mark.parametrize('kind', ['truncated', 'random_bytes', 'other_network', 'mis_shaped'])
def test_pretrained_rejects_bad_params_naming_file_and_parameter(base, tmp_path, kind):
    _, cfg, roidb = base
    prefix = str(tmp_path / 'imagenet')
    path = prefix + '-0000.params'
    cfg = update_config(cfg, {'output_path': str(tmp_path / 'out'),
                              'network': {'pretrained': prefix, 'pretrained_epoch': 0}})
    expected = None
    if kind in ('truncated', 'random_bytes'):
        _write_bad(kind, cfg, prefix, 0)
    elif kind == 'other_network':
        # a classifier's parameters: every backbone parameter is missing
        save_checkpoint(prefix, 0, None, {'fc1000_weight': mx.nd.ones((10, 4)),
                                          'fc1000_bias': mx.nd.zeros(10)}, {})
    else:
        arg, aux = _init_params(cfg)
        expected = 'res3a_branch2a_weight'
        arg[expected] = mx.nd.zeros(arg[expected].shape[:1] + (7,) + arg[expected].shape[2:])
        save_checkpoint(prefix, 0, None, arg, aux)
    with pytest.raises(ValueError) as info:
        train_net(cfg, 'rfcn', 'mini', roidb=roidb[:1])
    message = str(info.value)
    _assert_names(message, path, expected)
    if kind == 'other_network':
        inst = get_symbol_instance('rfcn', cfg)
        arg_shapes, _ = inst.param_shapes(cfg)
        named = re.findall(r'\b(\w+_(?:weight|gamma|beta|bias))\b', message)
        assert named and all(n in arg_shapes and not n.startswith('fc1000') for n in named), \
            message
    assert not os.path.isdir(os.path.join(str(tmp_path / 'out'), 'mini')) or \
        last_epoch(os.path.join(str(tmp_path / 'out'), 'mini', 'minitrain',
                                cfg.TRAIN.model_prefix)) is None


def test_nan_loss_stops_naming_iteration_and_keeps_last_good_checkpoint(base, tmp_path):
    _, cfg, roidb = base
    roidb = roidb[:2]  # two iterations per epoch
    cfg = update_config(cfg, {'output_path': str(tmp_path / 'out')})
    absurd = {'lr': 1e30, 'warmup': False}

    # diverging in the first epoch: an error naming the iteration, no checkpoint at all
    with pytest.raises(TrainingDivergedError,
                       match=r'NaN or infinite at epoch 0, iteration [01]\b'):
        train_net(update_config(cfg, {'TRAIN': absurd}), 'rfcn', 'mini', roidb=roidb)
    out_dir = os.path.join(str(tmp_path / 'out'), 'mini', 'minitrain')
    prefix = os.path.join(out_dir, cfg.TRAIN.model_prefix)
    assert list_epochs(prefix) == []
    assert not [f for f in os.listdir(out_dir) if f.endswith(('.params', '.states', '.tmp'))]

    # one good epoch, then an absurd learning rate on resume: epoch 1's files stay intact
    train_net(cfg, 'rfcn', 'mini', roidb=roidb)
    good = {ext: open('%s-0001.%s' % (prefix, ext), 'rb').read() for ext in ('params', 'states')}
    bad = update_config(cfg, {'TRAIN': dict(absurd, RESUME=True, end_epoch=3)})
    with pytest.raises(TrainingDivergedError, match=r'at epoch 1, iteration [01]\b') as info:
        train_net(bad, 'rfcn', 'mini', roidb=roidb)
    assert list_epochs(prefix) == [1]
    for ext, content in good.items():
        assert open('%s-0001.%s' % (prefix, ext), 'rb').read() == content
    arg, aux = load_param(prefix, 1)
    assert all(np.all(np.isfinite(v.asnumpy())) for v in list(arg.values()) + list(aux.values()))
    load_training_state(prefix, 1)
    logs = [os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.endswith('.log')]
    assert any(str(info.value) in open(f).read() for f in logs), 'divergence not logged'
