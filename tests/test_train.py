"""Training loop: learning-rate schedule, a short real run, resume and divergence."""
import os

import numpy as np
import pytest

from dcn.checkpoint import last_epoch, load_param
from dcn.config import load_config, update_config
from dcn.train import TrainingDivergedError, fixed_param_names, lr_schedule, train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')


def _cfg(tmp_path, **train):
    cfg = load_config(MINI_CFG)
    data = str(tmp_path / 'data')
    return update_config(cfg, {'output_path': str(tmp_path / 'out'), 'symbol': 'resnet_v1_18_rfcn',
                               'dataset': {'root_path': data,
                                           'dataset_path': os.path.join(data, 'shapes')},
                               'TRAIN': dict({'end_epoch': 1}, **train)})


def test_lr_schedule():
    from dcn.config import default_config
    cfg = update_config(default_config(), {'TRAIN': {'lr': 0.1, 'lr_step': '1.5,3',
                                                     'warmup': True, 'warmup_lr': 0.001,
                                                     'warmup_step': 4}})
    lr, sched = lr_schedule(cfg, 0, 10)
    assert sched.base_lr == lr  # the optimizer gets the same value: nothing is overridden
    assert lr == 0.1 and sched.step == [15, 30]
    assert sched(3) == 0.001 and sched(4) == 0.1 and sched(15) == 0.1
    assert abs(sched(16) - 0.01) < 1e-12 and abs(sched(31) - 0.001) < 1e-12
    lr, sched = lr_schedule(cfg, 2, 10)  # resuming after the first step: no warmup
    assert abs(lr - 0.01) < 1e-12 and sched.step == [10] and not sched.warmup


def test_fixed_param_names_contains_rule():
    import mxnet as mx
    s = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=2, name='res2a_branch1')
    s = mx.sym.BatchNorm(s, name='bn2a')
    s = mx.sym.FullyConnected(s, num_hidden=2, name='res3a')
    assert fixed_param_names(s, ['res2', 'gamma'], ['data']) == \
        ['res2a_branch1_weight', 'res2a_branch1_bias', 'bn2a_gamma']


def _roidb(cfg, n=4):
    from dcn.dataset import filter_roidb, load_gt_roidb
    _, roidb = load_gt_roidb(cfg, cfg.dataset.image_set, flip=False)
    return filter_roidb(roidb)[:n]


def test_short_run_then_resume(tmp_path):
    cfg = _cfg(tmp_path)
    roidb = _roidb(cfg)
    prefix, epoch = train_net(cfg, 'rfcn', 'mini', roidb=roidb)
    assert epoch == 1 and last_epoch(prefix) == 1
    assert prefix.startswith(str(tmp_path / 'out' / 'mini' / 'minitrain'))
    arg, aux = load_param(prefix, 1)
    assert 'rfcn_bbox_weight' in arg and all(np.all(np.isfinite(v.asnumpy())) for v in arg.values())
    logs = [f for f in os.listdir(os.path.dirname(prefix)) if f.endswith('.log')]
    text = open(os.path.join(os.path.dirname(prefix), logs[0])).read()
    assert 'training config' in text and 'samples/sec' in text and 'RPNAcc' in text
    # R-FCN's conv_new_1 trains at 3x the learning rate (weight and bias), as the original
    mults = [l for l in text.splitlines() if 'learning-rate multipliers' in l]
    assert len(mults) == 1
    assert 'conv_new_1_bias x3, conv_new_1_weight x3' in mults[0]
    cfg2 = update_config(cfg, {'TRAIN': {'RESUME': True, 'end_epoch': 2}})
    _, epoch = train_net(cfg2, 'rfcn', 'mini', roidb=roidb)
    assert epoch == 2 and last_epoch(prefix) == 2


def test_divergence_stops_and_keeps_checkpoints(tmp_path):
    cfg = _cfg(tmp_path)
    roidb = _roidb(cfg, 2)
    prefix, _ = train_net(cfg, 'rfcn', 'mini', roidb=roidb)
    good = open(prefix + '-0001.params', 'rb').read()
    # an absurd learning rate blows the weights up to inf/NaN within the epoch
    bad = update_config(cfg, {'TRAIN': {'lr': 1e30, 'warmup': False, 'RESUME': True,
                                        'end_epoch': 3}})
    with pytest.raises(TrainingDivergedError, match='NaN or infinite at epoch 1'):
        train_net(bad, 'rfcn', 'mini', roidb=roidb)
    assert last_epoch(prefix) == 1
    assert open(prefix + '-0001.params', 'rb').read() == good


def test_missing_pretrained_says_where(tmp_path):
    cfg = update_config(_cfg(tmp_path), {'network': {'pretrained': str(tmp_path / 'resnet')}})
    with pytest.raises(FileNotFoundError, match='resnet-0000.params'):
        train_net(cfg, 'rfcn', 'mini', roidb=_roidb(cfg, 1))
