"""Parameter files: atomic writes, un-normalised box regression, clear load errors."""
import os

import mxnet as mx
import numpy as np
import pytest

from dcn import checkpoint as ckpt
from dcn.callback import do_checkpoint

MEANS = [0.0, 0.1, 0.0, -0.1]
STDS = [0.1, 0.1, 0.2, 0.2]


def _params(rng):
    return {'bbox_pred_weight': mx.nd.array(rng.randn(12, 5)),      # 3 classes x 4
            'bbox_pred_bias': mx.nd.array(rng.randn(12)),
            'rfcn_bbox_weight': mx.nd.array(rng.randn(49 * 8, 3, 1, 1)),
            'rfcn_bbox_bias': mx.nd.array(rng.randn(49 * 8)),
            'conv_weight': mx.nd.array(rng.randn(2, 3))}


def test_do_checkpoint_unnormalises_and_keeps_memory(tmp_path):
    rng = np.random.RandomState(0)
    arg = _params(rng)
    before = {k: v.asnumpy().copy() for k, v in arg.items()}
    prefix = str(tmp_path / 'model')
    sym = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=2, name='fc')
    do_checkpoint(prefix, MEANS, STDS)(2, sym, arg, {'bn_moving_var': mx.nd.ones(3)})
    for k in arg:  # in-memory parameters untouched
        np.testing.assert_array_equal(arg[k].asnumpy(), before[k])
    saved, aux = ckpt.load_param(prefix, 3)
    assert os.path.isfile(prefix + '-symbol.json')
    np.testing.assert_array_equal(aux['bn_moving_var'].asnumpy(), np.ones(3))
    # bbox_pred: channel c is coordinate c % 4
    for c in range(12):
        np.testing.assert_allclose(saved['bbox_pred_weight'].asnumpy()[c],
                                   before['bbox_pred_weight'][c] * STDS[c % 4], rtol=1e-6)
        np.testing.assert_allclose(saved['bbox_pred_bias'].asnumpy()[c],
                                   before['bbox_pred_bias'][c] * STDS[c % 4] + MEANS[c % 4],
                                   rtol=1e-5, atol=1e-7)
    # rfcn_bbox: channel c = (k * 4 + j) * 49 + bin -> coordinate j = (c // 49) % 4
    for c in (0, 48, 49, 100, 150, 392 - 1):
        j = (c // 49) % 4
        np.testing.assert_allclose(saved['rfcn_bbox_weight'].asnumpy()[c],
                                   before['rfcn_bbox_weight'][c] * STDS[j], rtol=1e-6)
        np.testing.assert_allclose(saved['rfcn_bbox_bias'].asnumpy()[c],
                                   before['rfcn_bbox_bias'][c] * STDS[j] + MEANS[j], rtol=1e-5,
                                   atol=1e-7)
    np.testing.assert_array_equal(saved['conv_weight'].asnumpy(), before['conv_weight'])
    back = ckpt.normalize_bbox_params(saved, MEANS, STDS)
    for k in arg:
        np.testing.assert_allclose(back[k].asnumpy(), before[k], rtol=1e-5, atol=1e-6)


def test_crash_during_write_keeps_old_file(tmp_path, monkeypatch):
    prefix = str(tmp_path / 'm')
    ckpt.save_checkpoint(prefix, 1, None, {'w': mx.nd.ones(4)}, {})
    path = ckpt.param_path(prefix, 1)
    original = open(path, 'rb').read()

    def broken_save(fname, data):
        with open(fname, 'wb') as f:
            f.write(b'partial')
        raise KeyboardInterrupt('killed')
    monkeypatch.setattr(mx.nd, 'save', broken_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(prefix, 1, None, {'w': mx.nd.zeros(4)}, {})
    assert open(path, 'rb').read() == original
    assert sorted(os.listdir(tmp_path)) == ['m-0001.params']  # no temporary file left


def test_load_param_errors(tmp_path):
    prefix = str(tmp_path / 'x')
    with pytest.raises(FileNotFoundError, match='x-0003.params'):
        ckpt.load_param(prefix, 3)
    with open(ckpt.param_path(prefix, 3), 'wb') as f:
        f.write(b'not a params file')
    with pytest.raises(ValueError, match='x-0003.params'):
        ckpt.load_param(prefix, 3)


def test_check_param_shapes_names_parameter(tmp_path):
    data = mx.sym.var('data')
    sym = mx.sym.FullyConnected(data, num_hidden=4, name='fc1')
    sym = mx.sym.BatchNorm(sym, name='bn')
    good = {'fc1_weight': mx.nd.zeros((4, 3)), 'fc1_bias': mx.nd.zeros(4),
            'bn_gamma': mx.nd.ones(4), 'bn_beta': mx.nd.zeros(4)}
    aux = {'bn_moving_mean': mx.nd.zeros(4), 'bn_moving_var': mx.nd.ones(4)}
    ckpt.check_param_shapes(sym, good, aux, {'data': (2, 3)})
    bad = dict(good, fc1_weight=mx.nd.zeros((4, 5)))
    with pytest.raises(ValueError, match=r'fc1_weight.*\(4, 5\).*m-0001.params.*\(4, 3\)'):
        ckpt.check_param_shapes(sym, bad, aux, {'data': (2, 3)}, source='m-0001.params')
    missing = dict(good)
    del missing['fc1_bias']
    with pytest.raises(ValueError, match='fc1_bias'):
        ckpt.check_param_shapes(sym, missing, aux, {'data': (2, 3)})
    with pytest.raises(ValueError, match='bn_moving_var'):
        ckpt.check_param_shapes(sym, good, {'bn_moving_mean': aux['bn_moving_mean']},
                                {'data': (2, 3)})


def test_list_and_last_epoch(tmp_path):
    prefix = str(tmp_path / 'e2e')
    assert ckpt.last_epoch(prefix) is None
    for e in (1, 3, 2):
        ckpt.save_params(ckpt.param_path(prefix, e), {'a': mx.nd.ones(1)}, {})
    (tmp_path / 'e2e-symbol.json').write_text('{}')
    assert ckpt.list_epochs(prefix) == [1, 2, 3] and ckpt.last_epoch(prefix) == 3
