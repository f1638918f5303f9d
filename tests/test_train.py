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


def test_train_net_runs_the_engine_hooks_then_the_given_ones(tmp_path):
    from dcn.engine.hooks import (Checkpoint, DivergenceStop, EvalHook, LRSchedule,
                                  MetricLogger, TrainingState)
    from dcn.train import get_symbol_instance, training_hooks
    cfg = _cfg(tmp_path)
    model = get_symbol_instance('rfcn', cfg)
    kinds = [LRSchedule, MetricLogger, DivergenceStop, TrainingState, Checkpoint]
    hooks = training_hooks(cfg, model, str(tmp_path / 'p'), 0, 4, 1, 1)
    assert [type(h) for h in hooks] == kinds
    assert hooks[-1].save is not None and hooks[3].save
    # the box layers of the model's RoI head are the ones un-normalised and kept exact
    assert hooks[3].bbox_layers == model.bbox_layers == (('rfcn_bbox', 49),)
    # other ranks keep the state in step but write nothing
    hooks = training_hooks(cfg, model, str(tmp_path / 'p'), 0, 4, 1, 1, rank=1)
    assert [type(h) for h in hooks] == kinds[:-1] and not hooks[3].save

    seen = []

    def evaluate(trainer):
        seen.append((trainer.epoch, os.path.isfile('%s-%04d.params'
                                                   % (prefix_of(trainer), trainer.epoch + 1))))
        return {'ok': 1}

    def prefix_of(trainer):
        return [h for h in trainer.hooks if isinstance(h, Checkpoint)][0].prefix
    ev = EvalHook(evaluate)
    prefix, epoch = train_net(cfg, 'rfcn', 'mini', roidb=_roidb(cfg, 1), hooks=[ev])
    assert seen == [(0, True)] and ev.results == [(1, {'ok': 1})]


def test_missing_pretrained_says_where(tmp_path):
    cfg = update_config(_cfg(tmp_path), {'network': {'pretrained': str(tmp_path / 'resnet')}})
    with pytest.raises(FileNotFoundError, match='resnet-0000.params'):
        train_net(cfg, 'rfcn', 'mini', roidb=_roidb(cfg, 1))


def _as_original_checkpoint(src_prefix, dst_prefix, epoch, cfg, order_seed=0):
    """The checkpoint the original's training writes for the same state: ``.params`` with
    the box regression as trained (normalised) plus un-normalised ``NAME_test`` copies, the
    training symbol (here: its variables in another order), and ``.states`` as MXNet's
    ``Updater.get_states`` writes them, keyed by the position of each parameter in that
    symbol's arguments."""
    import pickle
    import mxnet as mx
    from dcn.checkpoint import (load_training_state, save_params, split_test_copies,
                                symbol_path)
    from dcn.train import get_symbol_instance
    arg, aux = load_param(src_prefix, epoch)
    states_bytes, exact = load_training_state(src_prefix, epoch)
    saved = dict(arg)
    for name, value in exact.items():  # as trained, and the copy for testing
        saved[name] = mx.nd.array(value)
        saved[name + '_test'] = arg[name]
    save_params('%s-%04d.params' % (dst_prefix, epoch), saved, aux)
    assert sorted(split_test_copies(saved)[1]) == sorted(n + '_test' for n in exact)
    sym = get_symbol_instance('rfcn', cfg).get_symbol(cfg, is_train=True)
    inputs = ('data', 'im_info', 'gt_boxes', 'label', 'bbox_target', 'bbox_weight')
    ours = [n for n in sym.list_arguments() if n not in inputs]
    theirs = list(np.random.RandomState(order_seed).permutation(ours))
    mx.sym.Group([mx.sym.var(n) for n in theirs]).save(symbol_path(dst_prefix))
    states = pickle.loads(states_bytes)  # one device: keyed by our parameter index
    original = {theirs.index(ours[i]): v for i, v in states.items()}
    with open('%s-%04d.states' % (dst_prefix, epoch), 'wb') as f:
        f.write(pickle.dumps(original, protocol=2))


def test_resume_and_test_from_a_checkpoint_of_the_original(tmp_path):
    import shutil
    from dcn.checkpoint import symbol_path
    from dcn.tester import test_net
    cfg = _cfg(tmp_path)
    roidb = _roidb(cfg)
    prefix, _ = train_net(cfg, 'rfcn', 'mini', roidb=roidb)
    cfg_b = update_config(cfg, {'output_path': str(tmp_path / 'orig')})
    prefix_b = prefix.replace(str(tmp_path / 'out'), str(tmp_path / 'orig'))
    os.makedirs(os.path.dirname(prefix_b))
    _as_original_checkpoint(prefix, prefix_b, 1, cfg)
    # testing the original's checkpoint uses its NAME_test copies: same detections
    ours = test_net(cfg, 'rfcn', prefix, 1)
    theirs = test_net(cfg_b, 'rfcn', prefix_b, 1)
    assert ours == theirs
    # resuming it continues as resuming ours: same parameters after the next epoch
    resume = {'TRAIN': {'RESUME': True, 'end_epoch': 2}}
    train_net(update_config(cfg, resume), 'rfcn', 'mini', roidb=roidb)
    train_net(update_config(cfg_b, resume), 'rfcn', 'mini', roidb=roidb)
    arg_a, aux_a = load_param(prefix, 2)
    arg_b, aux_b = load_param(prefix_b, 2)
    assert sorted(arg_a) == sorted(arg_b)
    for name in arg_a:
        np.testing.assert_allclose(arg_b[name].asnumpy(), arg_a[name].asnumpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    # without the symbol the states cannot be mapped: an error saying what to do
    prefix_c = prefix_b.replace('orig', 'orig_c')
    os.makedirs(os.path.dirname(prefix_c))
    _as_original_checkpoint(prefix, prefix_c, 1, cfg)
    os.remove(symbol_path(prefix_c))
    cfg_c = update_config(cfg, {'output_path': str(tmp_path / 'orig_c'),
                                'TRAIN': {'RESUME': True, 'end_epoch': 2}})
    with pytest.raises(ValueError, match='symbol.json written with it.*move .*states away'):
        train_net(cfg_c, 'rfcn', 'mini', roidb=roidb)
    shutil.rmtree(str(tmp_path / 'orig_c'))
