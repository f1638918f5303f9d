"""The training engine (dcn.engine.trainer, dcn.engine.hooks) on a tiny regression module:
hook order and calls, divergence stop, atomic checkpoints, exact resume."""
import os

import mxnet as mx
import numpy as np
import pytest

from dcn.checkpoint import list_epochs, load_param, load_training_state, param_path
from dcn.engine.hooks import (Checkpoint, DivergenceStop, EvalHook, LRSchedule, MetricLogger,
                              TrainingDivergedError, TrainingState)
from dcn.engine.trainer import HOOK_STAGES, HookBase, Trainer
from dcn.config import default_config, update_config

BATCHES, BATCH = 3, 2
MEANS, STDS = (0.0, 0.0, 0.0, 0.0), (0.1, 0.1, 0.2, 0.2)
BBOX_LAYERS = (('bbox_pred', 1),)


class Loader(object):
    """Fixed data, drawn in an order from NumPy's global generator (which the trainer seeds
    per epoch); records the epochs it is set to."""

    def __init__(self):
        rng = np.random.RandomState(0)
        self.x = rng.uniform(-1, 1, (BATCHES * BATCH, 5)).astype(np.float32)
        self.y = rng.uniform(-1, 1, (BATCHES * BATCH, 4)).astype(np.float32)
        self.provide_data = [mx.io.DataDesc('data', (BATCH, 5))]
        self.provide_label = [mx.io.DataDesc('target', (BATCH, 4))]
        self.iters_per_epoch = BATCHES
        self.epochs = []

    def set_epoch(self, seed, epoch):
        self.epochs.append((seed, epoch))

    def __iter__(self):
        order = np.random.permutation(len(self.x))
        for i in range(BATCHES):
            idx = order[i * BATCH:(i + 1) * BATCH]
            yield mx.io.DataBatch([mx.nd.array(self.x[idx])], [mx.nd.array(self.y[idx])])


def _module(seed=0):
    data = mx.sym.Variable('data')
    hidden = mx.sym.FullyConnected(data, num_hidden=8, name='fc1')
    pred = mx.sym.FullyConnected(mx.sym.Activation(hidden, act_type='relu'), num_hidden=4,
                                 name='bbox_pred')
    sym = mx.sym.LinearRegressionOutput(pred, mx.sym.Variable('target'), name='loss')
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['target'], context=[mx.cpu()])
    mod.bind([('data', (BATCH, 5))], [('target', (BATCH, 4))], for_training=True)
    mx.random.seed(seed)
    mod.init_params(mx.init.Uniform(0.5))
    return mod


def _cfg(**train):
    return update_config(default_config(), {'TRAIN': dict(
        {'lr': 0.05, 'lr_step': '1', 'warmup': True, 'warmup_lr': 0.01, 'warmup_step': 2},
        **train)})


class Recorder(HookBase):
    def __init__(self, log, tag):
        self.log, self.tag = log, tag

    def __getattribute__(self, name):
        if name in HOOK_STAGES:
            log, tag = object.__getattribute__(self, 'log'), object.__getattribute__(self, 'tag')
            return lambda *args: log.append((tag, name))
        return object.__getattribute__(self, name)


def _params(mod):
    arg, aux = mod.get_params()
    return {k: v.asnumpy().copy() for k, v in arg.items()}


def test_hooks_are_called_in_order_at_every_stage():
    log = []
    loader = Loader()
    trainer = Trainer(_module(), loader, mx.metric.MSE(), 2, 4, seed=7,
                      optimizer_params={'learning_rate': 0.1},
                      hooks=[Recorder(log, 'a'), Recorder(log, 'b')])
    assert trainer.train() == 4
    stages = [s for t, s in log if t == 'a']
    step = ['before_step', 'after_backward', 'after_step']
    epoch = ['before_epoch'] + step * BATCHES + ['after_epoch']
    assert stages == ['configure_optimizer', 'before_train'] + epoch * 2 + ['after_train']
    # at every stage hook a before hook b
    assert log[0::2] == [('a', s) for s in stages] and log[1::2] == [('b', s) for s in stages]
    assert loader.epochs == [(7, 2), (7, 3)]


def test_hooks_see_the_loop_state():
    seen = []

    class Probe(HookBase):
        def configure_optimizer(self, params):
            params['learning_rate'] = 0.25

        def before_step(self):
            self.before = _params(self.trainer.module)

        def after_backward(self):
            # the gradients exist, the parameters are not updated yet
            t = self.trainer
            now = _params(t.module)
            assert all(np.array_equal(now[k], self.before[k]) for k in now)
            assert [n for n, _ in t.outputs()] == ['loss_output']

        def after_step(self):
            t = self.trainer
            after = _params(t.module)
            assert any(not np.array_equal(after[k], self.before[k]) for k in after)
            seen.append((t.epoch, t.nbatch, t.module._optimizer.lr))

        def after_epoch(self):
            arg, aux = self.trainer.epoch_params()
            assert arg is self.trainer.epoch_params()[0]  # read once per epoch
            seen.append(('end', self.trainer.epoch, sorted(arg)))

    Trainer(_module(), Loader(), mx.metric.MSE(), 0, 2, hooks=[Probe()]).train()
    names = ['bbox_pred_bias', 'bbox_pred_weight', 'fc1_bias', 'fc1_weight']
    assert seen == [(0, 0, 0.25), (0, 1, 0.25), (0, 2, 0.25), ('end', 0, names),
                    (1, 0, 0.25), (1, 1, 0.25), (1, 2, 0.25), ('end', 1, names)]


def test_after_train_runs_when_the_loop_raises():
    log = []

    class Fail(HookBase):
        def after_step(self):
            if self.trainer.nbatch == 1:
                raise RuntimeError('hook failed')

    with pytest.raises(RuntimeError, match='hook failed'):
        Trainer(_module(), Loader(), mx.metric.MSE(), 0, 2,
                hooks=[Recorder(log, 'r'), Fail()]).train()
    assert log[-1] == ('r', 'after_train')
    assert ('r', 'after_epoch') not in log


def test_bad_hooks_and_epochs_are_errors():
    with pytest.raises(TypeError, match='HookBase'):
        Trainer(_module(), Loader(), mx.metric.MSE(), 0, 1, hooks=[lambda: None])
    with pytest.raises(ValueError, match='end_epoch'):
        Trainer(_module(), Loader(), mx.metric.MSE(), 3, 3)
    with pytest.raises(ValueError, match='period'):
        EvalHook(lambda t: None, period=0)


def test_lr_schedule_hook_gives_warmup_then_steps():
    lrs = []

    class Lr(HookBase):
        def after_step(self):
            opt = self.trainer.module._optimizer
            lrs.append(opt.lr_scheduler(opt.num_update))

    hooks = [LRSchedule(_cfg(), 0, BATCHES), Lr()]
    Trainer(_module(), Loader(), mx.metric.MSE(), 0, 2, hooks=hooks).train()
    # updates 1..6: warmup for the first 2, then lr, a step after epoch 1 (iteration 3)
    assert lrs == pytest.approx([0.01, 0.05, 0.05, 0.005, 0.005, 0.005])
    assert hooks[0].scheduler.step == [3]


def _hooks(prefix, cfg=None, begin_epoch=0, state=None):
    state = state or TrainingState(prefix, BBOX_LAYERS)
    return [LRSchedule(cfg or _cfg(), begin_epoch, BATCHES), MetricLogger(BATCH, 1),
            DivergenceStop(), state, Checkpoint(prefix, MEANS, STDS, BBOX_LAYERS)]


def _poison(mod, name='bbox_pred_weight'):
    arg, aux = mod.get_params()
    arg[name] = arg[name] * np.nan
    mod.set_params(arg, aux)


class PoisonAt(HookBase):
    def __init__(self, stage, epoch, nbatch):
        self.stage, self.epoch, self.nbatch = stage, epoch, nbatch

    def before_step(self):
        if self.stage == 'before_step':
            self._maybe()

    def after_step(self):
        if self.stage == 'after_step':
            self._maybe()

    def _maybe(self):
        t = self.trainer
        if (t.epoch, t.nbatch) == (self.epoch, self.nbatch):
            _poison(t.module)


@pytest.mark.parametrize('stage,what,nbatch', [('before_step', 'output loss_output', 1),
                                               ('after_step', 'parameter bbox_pred_weight', 2)])
def test_divergence_stops_with_a_clear_error_and_keeps_checkpoints(tmp_path, stage, what,
                                                                   nbatch):
    prefix = str(tmp_path / 'm')
    trainer = Trainer(_module(), Loader(), mx.metric.MSE(), 0, 3,
                      optimizer_params={'momentum': 0.9}, hooks=_hooks(prefix))
    trainer.register_hooks([PoisonAt(stage, 1, nbatch)])
    good = {}

    class Keep(HookBase):
        def after_epoch(self):
            for ext in ('params', 'states'):
                good[ext] = open('%s-0001.%s' % (prefix, ext), 'rb').read()
    trainer.register_hooks([Keep()])
    with pytest.raises(TrainingDivergedError) as info:
        trainer.train()
    assert str(info.value) == (
        'training diverged: %s is NaN or infinite at epoch 1, iteration %d; stopping '
        '(checkpoints already written are kept)' % (what, nbatch))
    assert list_epochs(prefix) == [1]
    assert sorted(os.listdir(str(tmp_path))) == ['m-0001.params', 'm-0001.states',
                                                 'm-symbol.json']
    for ext, content in good.items():
        assert open('%s-0001.%s' % (prefix, ext), 'rb').read() == content
    arg, aux = load_param(prefix, 1)
    assert all(np.all(np.isfinite(v.asnumpy())) for v in arg.values())


def test_checkpoint_is_atomic_when_the_save_crashes(tmp_path, monkeypatch):
    prefix = str(tmp_path / 'm')
    real_save = mx.nd.save

    class CrashInEpoch2(HookBase):
        def after_step(self):
            if self.trainer.epoch == 1 and self.trainer.nbatch == BATCHES - 1:
                def broken_save(fname, data):
                    with open(fname, 'wb') as f:
                        f.write(b'partial')
                    raise KeyboardInterrupt('killed while saving')
                monkeypatch.setattr(mx.nd, 'save', broken_save)

    trainer = Trainer(_module(), Loader(), mx.metric.MSE(), 0, 2, hooks=_hooks(prefix))
    trainer.register_hooks([CrashInEpoch2()])
    good = {}

    class Keep(HookBase):
        def after_epoch(self):
            if self.trainer.epoch == 0:
                good['params'] = open(param_path(prefix, 1), 'rb').read()
    trainer.register_hooks([Keep()])
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    monkeypatch.setattr(mx.nd, 'save', real_save)
    # epoch 2's files: the training state is written (pickle, not mx.nd.save), its .params
    # file is not there at all, nothing partial or temporary is left
    assert list_epochs(prefix) == [1]
    assert sorted(os.listdir(str(tmp_path))) == ['m-0001.params', 'm-0001.states',
                                                 'm-0002.states', 'm-symbol.json']
    assert open(param_path(prefix, 1), 'rb').read() == good['params']


def test_checkpoint_unnormalises_the_box_layers_and_state_keeps_them_exact(tmp_path):
    prefix = str(tmp_path / 'm')
    mod = _module()
    Trainer(mod, Loader(), mx.metric.MSE(), 0, 1, hooks=_hooks(prefix)).train()
    arg, _ = mod.get_params()
    saved, _ = load_param(prefix, 1)
    scale = np.array(STDS, np.float32)
    np.testing.assert_allclose(saved['bbox_pred_weight'].asnumpy(),
                               arg['bbox_pred_weight'].asnumpy() * scale[:, None], rtol=1e-6)
    np.testing.assert_array_equal(saved['fc1_weight'].asnumpy(), arg['fc1_weight'].asnumpy())
    _, exact = load_training_state(prefix, 1)
    assert sorted(exact) == ['bbox_pred_bias', 'bbox_pred_weight']
    np.testing.assert_array_equal(exact['bbox_pred_weight'], arg['bbox_pred_weight'].asnumpy())


def _resume_module(prefix, epoch, state):
    """A module started from checkpoint ``epoch`` as train_net resumes: the saved parameters
    normalised back, the exact box layers and the optimizer state from the training state."""
    from dcn.checkpoint import normalize_bbox_params
    mod = _module(seed=99)  # other initial values: everything must come from the files
    arg, aux = load_param(prefix, epoch, convert=True)
    arg = normalize_bbox_params(arg, MEANS, STDS, BBOX_LAYERS)
    state.load(epoch, arg)
    mod.set_params(arg, aux)
    return mod


def test_resume_gives_the_parameters_of_an_uninterrupted_run(tmp_path):
    ref = str(tmp_path / 'ref' / 'm')
    os.makedirs(os.path.dirname(ref))
    opt = {'momentum': 0.9, 'wd': 1e-3}
    Trainer(_module(), Loader(), mx.metric.MSE(), 0, 3, seed=5, optimizer_params=opt,
            hooks=_hooks(ref)).train()

    out = str(tmp_path / 'run' / 'm')
    os.makedirs(os.path.dirname(out))
    Trainer(_module(), Loader(), mx.metric.MSE(), 0, 1, seed=5, optimizer_params=opt,
            hooks=_hooks(out)).train()
    state = TrainingState(out, BBOX_LAYERS)
    mod = _resume_module(out, 1, state)
    Trainer(mod, Loader(), mx.metric.MSE(), 1, 3, seed=5, optimizer_params=opt,
            hooks=_hooks(out, begin_epoch=1, state=state)).train()
    for epoch in (2, 3):
        want = mx.nd.load(param_path(ref, epoch))
        got = mx.nd.load(param_path(out, epoch))
        assert sorted(want) == sorted(got)
        for k in want:
            assert np.array_equal(want[k].asnumpy(), got[k].asnumpy()), (epoch, k)

    # control: without the optimizer state (zero momentum) the resumed run differs
    out2 = str(tmp_path / 'nostate' / 'm')
    os.makedirs(os.path.dirname(out2))
    Trainer(_module(), Loader(), mx.metric.MSE(), 0, 1, seed=5, optimizer_params=opt,
            hooks=_hooks(out2)).train()
    os.remove(out2 + '-0001.states')
    state = TrainingState(out2, BBOX_LAYERS)
    mod = _resume_module(out2, 1, state)
    assert state.states is None
    Trainer(mod, Loader(), mx.metric.MSE(), 1, 3, seed=5, optimizer_params=opt,
            hooks=_hooks(out2, begin_epoch=1, state=state)).train()
    want, got = mx.nd.load(param_path(ref, 3)), mx.nd.load(param_path(out2, 3))
    assert any(not np.array_equal(want[k].asnumpy(), got[k].asnumpy()) for k in want)


def test_eval_hook_runs_every_period_and_at_the_end(tmp_path):
    prefix = str(tmp_path / 'm')
    calls = []

    def evaluate(trainer):
        # the epoch's checkpoint is already written (the hook runs after Checkpoint)
        assert os.path.isfile(param_path(prefix, trainer.epoch + 1))
        calls.append(trainer.epoch)
        return {'epoch': trainer.epoch}

    ev = EvalHook(evaluate, period=2)
    Trainer(_module(), Loader(), mx.metric.MSE(), 0, 5, hooks=_hooks(prefix) + [ev]).train()
    assert calls == [1, 3, 4]
    assert ev.results == [(2, {'epoch': 1}), (4, {'epoch': 3}), (5, {'epoch': 4})]
