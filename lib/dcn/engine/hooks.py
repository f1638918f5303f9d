"""The hooks of the training loop (:class:`dcn.engine.trainer.Trainer`).

``train_net`` registers, in this order: :class:`LRSchedule` (learning rate, steps and warmup
of the optimizer), :class:`MetricLogger` (speed and metrics every ``frequent`` batches, the
epoch's metrics and time), :class:`DivergenceStop` (a NaN/inf output or parameter stops the
training with :class:`TrainingDivergedError`; written checkpoints are kept),
:class:`TrainingState` (restores the optimizer state on resume, writes it after every epoch)
and :class:`Checkpoint` (the epoch's ``.params``, atomically, box-regression layers
un-normalised). The training state is written before the ``.params`` file, so that a
``.params`` file marks a complete checkpoint. :class:`EvalHook` runs an evaluation after
every ``period`` epochs and after the last one (register it after :class:`Checkpoint` to
evaluate the saved epoch).
"""
import logging
import os
import pickle
import time

import mxnet as mx
import numpy as np

from dcn.callback import Speedometer, do_checkpoint
from dcn.checkpoint import (BBOX_LAYERS, TrainingStateFormatError, load_training_state,
                            param_path, read_mxnet_optimizer_states, save_training_state,
                            states_path, symbol_argument_order, symbol_path)
from dcn.config import original_quirks

from .trainer import HookBase

__all__ = ['LRSchedule', 'MetricLogger', 'DivergenceStop', 'TrainingState', 'Checkpoint',
           'EvalHook', 'TrainingDivergedError', 'WarmupMultiFactorScheduler', 'lr_schedule',
           'updates_per_iteration']

LOGGER_NAME = 'dcn'


def _logger(logger):
    return logger or logging.getLogger(LOGGER_NAME)


# ---------------------------------------------------------------------- learning rate
class WarmupMultiFactorScheduler(mx.lr_scheduler.LRScheduler):
    """Learning rate ``base_lr * factor ** k`` after k of ``step`` iterations have passed;
    ``warmup_lr`` for the first ``warmup_step`` iterations when ``warmup`` is set.
    Stateless in the update count (restartable)."""

    def __init__(self, step, factor=1, warmup=False, warmup_lr=0, warmup_step=0):
        super(WarmupMultiFactorScheduler, self).__init__()
        step = [int(s) for s in step]
        if any(b <= a for a, b in zip(step[:-1], step[1:])):
            raise ValueError('learning-rate steps must be increasing, got %s' % step)
        if step and step[0] < 1:
            raise ValueError('learning-rate steps must be >= 1 iteration, got %s' % step)
        if factor > 1.0:
            raise ValueError('learning-rate factor must be <= 1, got %r' % factor)
        self.step = step
        self.factor = factor
        self.warmup = bool(warmup)
        self.warmup_lr = warmup_lr
        self.warmup_step = int(warmup_step)

    def __call__(self, num_update):
        if self.warmup and num_update < self.warmup_step:
            return self.warmup_lr
        passed = sum(1 for s in self.step if num_update > s)
        return self.base_lr * self.factor ** passed


def lr_schedule(cfg, begin_epoch, iters_per_epoch):
    """(base learning rate at ``begin_epoch``, scheduler) from ``TRAIN.lr``, ``lr_step``
    (comma-separated epochs, fractional allowed), ``lr_factor`` and the warmup keys."""
    train = cfg.TRAIN
    factor = float(train.get('lr_factor', 0.1))
    lr_epochs = [float(e) for e in str(train.lr_step).split(',') if e.strip()]
    lr_epochs = sorted(lr_epochs)
    remaining = [e - begin_epoch for e in lr_epochs if e > begin_epoch]
    lr = float(train.lr) * factor ** (len(lr_epochs) - len(remaining))
    iters = sorted(set(max(1, int(e * iters_per_epoch)) for e in remaining))
    # warmup at the start of training; the original warms up again on every resume
    warmup = bool(train.warmup) and (begin_epoch == 0 or original_quirks(cfg))
    sched = WarmupMultiFactorScheduler(iters, factor, warmup, float(train.warmup_lr),
                                       int(train.warmup_step))
    sched.base_lr = lr  # the optimizer is given the same value (no override message)
    return lr, sched


def updates_per_iteration(kvstore):
    """Optimizer updates the kvstore servers make per iteration of one worker."""
    if isinstance(kvstore, mx.kvstore.KVStore) and kvstore.type.startswith('dist') \
            and 'async' in kvstore.type:
        return kvstore.num_workers
    return 1


def _lr_multipliers(mod):
    """{parameter name: learning-rate multiplier != 1} as the module's optimizer applies them
    (the ``__lr_mult__`` attributes of the training symbol)."""
    opt = getattr(mod, '_optimizer', None)
    if opt is None:
        return {}
    base = opt.learning_rate
    mults = {}
    for index, name in sorted(opt.idx2name.items()):
        mult = opt._get_lr(index) / base if base else 1.0
        if abs(mult - 1.0) > 1e-9:
            mults[name] = round(mult, 9)
    return mults


class LRSchedule(HookBase):
    """The optimizer's learning rate and :class:`WarmupMultiFactorScheduler` from the config
    (:func:`lr_schedule` at ``begin_epoch``; steps and warmup counted in the optimizer
    updates the kvstore makes, ``updates_per_iter`` per iteration of one worker); logs them
    and, once the optimizer exists, the learning-rate multipliers of the graph."""

    def __init__(self, cfg, begin_epoch, iters_per_epoch, updates_per_iter=1, logger=None):
        self.cfg = cfg
        self.begin_epoch = int(begin_epoch)
        self.iters_per_epoch = int(iters_per_epoch)
        self.updates_per_iter = int(updates_per_iter)
        self.logger = _logger(logger)
        self.scheduler = None

    def configure_optimizer(self, params):
        # the servers count one update per iteration of every worker in dist_async, per
        # global iteration (all workers together) in dist_sync; the shards have equal lengths
        per_iter = self.updates_per_iter
        lr, scheduler = lr_schedule(self.cfg, self.begin_epoch, self.iters_per_epoch * per_iter)
        scheduler.warmup_step *= per_iter
        self.logger.info('learning rate %g, steps at iterations %s, warmup %s', lr,
                         scheduler.step, scheduler.warmup)
        params['learning_rate'] = lr
        params['lr_scheduler'] = scheduler
        self.scheduler = scheduler

    def before_train(self):
        mults = _lr_multipliers(self.trainer.module)
        if mults:
            self.logger.info('learning-rate multipliers: %s',
                             ', '.join('%s x%g' % kv for kv in sorted(mults.items())))


# ---------------------------------------------------------------------- logging
class MetricLogger(HookBase):
    """Speed and training metrics every ``frequent`` batches (:class:`dcn.callback.
    Speedometer`), the epoch's metrics (``Epoch[e] Train-<name>=<value>``) and time."""

    def __init__(self, batch_size, frequent=50, logger=None):
        self.logger = _logger(logger)
        self.speedometer = Speedometer(batch_size, frequent, self.logger)
        self.tic = None

    def before_epoch(self):
        self.tic = time.time()

    def after_step(self):
        t = self.trainer
        self.speedometer(mx.model.BatchEndParam(epoch=t.epoch, nbatch=t.nbatch,
                                                eval_metric=t.metric, locals=None))

    def after_epoch(self):
        t = self.trainer
        for name, value in t.metric.get_name_value():
            self.logger.info('Epoch[%d] Train-%s=%f', t.epoch, name, value)
        self.logger.info('Epoch[%d] Time cost=%.3f', t.epoch, time.time() - self.tic)


# ---------------------------------------------------------------------- divergence
class TrainingDivergedError(RuntimeError):
    """A loss or parameter became NaN or infinite."""


def check_finite(arrays, what, epoch, nbatch, logger=None):
    """Raise :class:`TrainingDivergedError` (logged first) naming the first of ``arrays``
    ([(name, array)]) holding a NaN or an infinity."""
    for name, arr in arrays:
        value = arr.asnumpy() if hasattr(arr, 'asnumpy') else np.asarray(arr)
        if not np.all(np.isfinite(value)):
            msg = ('training diverged: %s %s is NaN or infinite at epoch %d, iteration %d; '
                   'stopping (checkpoints already written are kept)' % (what, name, epoch, nbatch))
            _logger(logger).error(msg)  # in the training log file too
            raise TrainingDivergedError(msg)


class DivergenceStop(HookBase):
    """Stops the training with :class:`TrainingDivergedError` when an output of the
    iteration (checked before the update) or a parameter at the end of an epoch (checked
    before anything of the epoch is written) is NaN or infinite; the message names the
    array, the epoch and the iteration."""

    def __init__(self, logger=None):
        self.logger = _logger(logger)

    def after_backward(self):
        t = self.trainer
        check_finite(t.outputs(), 'output', t.epoch, t.nbatch, self.logger)

    def after_epoch(self):
        t = self.trainer
        arg, aux = t.epoch_params()
        check_finite(sorted(arg.items()) + sorted(aux.items()), 'parameter', t.epoch,
                     t.nbatch, self.logger)


# ---------------------------------------------------------------------- training state
def _updater(mod):
    """The module's local optimizer updater, or None (e.g. distributed kvstore)."""
    if getattr(mod, '_update_on_kvstore', False):
        return getattr(getattr(mod, '_kvstore', None), '_updater', None)
    return getattr(mod, '_updater', None)


def exact_param_names(arg_params, bbox_layers=BBOX_LAYERS):
    """Parameters whose ``.params`` copy is not bit-exact (un-normalised box regression)."""
    names = []
    for layer, _ in bbox_layers:
        names += [n for n in (layer + '_weight', layer + '_bias') if n in arg_params]
    return names


class _StatesByName(dict):
    """Optimizer states by parameter name (read from the original's ``.states``)."""


def _original_states(prefix, epoch, arg_params, logger):
    """States by name from the MXNet optimizer states the original's training saved."""
    path = states_path(prefix, epoch)
    order = None
    if os.path.isfile(symbol_path(prefix)):
        order = [n for n in symbol_argument_order(symbol_path(prefix)) if n in arg_params]
    try:
        by_name = read_mxnet_optimizer_states(
            path, order, {n: tuple(v.shape) for n, v in arg_params.items()})
    except ValueError as exc:
        raise ValueError('%s. To resume from this checkpoint, put beside it the training '
                         'symbol %s written with it (the original saves it there), or move %s '
                         'away to resume with zero momentum.'
                         % (exc, symbol_path(prefix), path)) from None
    logger.info('restored the MXNet optimizer states of %d parameters from %s', len(by_name),
                path)
    return _StatesByName(by_name)


def _copy_state(state):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_copy_state(s) for s in state)
    return state.copy()


def _module_states(mod, by_name):
    """Updater state bytes for ``mod`` from states by parameter name."""
    names = mod._exec_group.param_names
    states = {}
    if mod._update_on_kvstore:  # the kvstore's updater: keyed by name
        states = {n: by_name[n] for n in names if n in by_name}
    else:  # the module's updater: index * devices + device
        ndev = len(mod._context)
        for i, n in enumerate(names):
            if n in by_name:
                for k in range(ndev):
                    states[i * ndev + k] = _copy_state(by_name[n])
    return pickle.dumps(states)


class TrainingState(HookBase):
    """What exact resuming needs besides the ``.params`` file: the optimizer state (momentum)
    and the exact in-memory values of the box-regression layers (whose ``.params`` copy is
    un-normalised), in ``PREFIX-%04d.states``.

    :meth:`load` (before the module is initialised) reads the state saved with an epoch and
    puts the exact box-regression values into ``arg_params``; ``before_train`` gives the
    optimizer state to the module's updater; ``after_epoch`` writes the state of the epoch
    (when ``save``: rank 0 of a distributed training), before :class:`Checkpoint` writes the
    ``.params`` file.
    """

    def __init__(self, prefix, bbox_layers=BBOX_LAYERS, save=True, logger=None):
        self.prefix = prefix
        self.bbox_layers = bbox_layers
        self.save = bool(save)
        self.logger = _logger(logger)
        self.states = None
        self.source = None

    def load(self, epoch, arg_params):
        """Read the optimizer state saved with ``epoch``: bytes (this project's ``.states``),
        states by name (the original's ``.states``) or None if absent (resume with zero
        momentum). With this project's file, replaces, in place, the box-regression
        parameters of ``arg_params`` by their exact values. Returns the state."""
        self.source = param_path(self.prefix, epoch)
        try:
            states, exact = load_training_state(self.prefix, epoch)
        except FileNotFoundError:
            self.logger.warning('%s not found: resuming with zero momentum',
                                states_path(self.prefix, epoch))
            return None
        except TrainingStateFormatError:
            self.states = _original_states(self.prefix, epoch, arg_params, self.logger)
            return self.states
        for name, value in exact.items():
            if name in arg_params and tuple(arg_params[name].shape) == tuple(value.shape):
                arg_params[name] = mx.nd.array(value, dtype=value.dtype)
        self.logger.info('restored training state from %s', states_path(self.prefix, epoch))
        self.states = states
        return states

    def before_train(self):
        if self.states is None:
            return
        mod = self.trainer.module
        updater = _updater(mod)
        if updater is None:
            self.logger.warning('optimizer state of %s not restored (distributed kvstore)',
                                self.source)
            return
        states = self.states
        if isinstance(states, _StatesByName):
            states = _module_states(mod, states)
        updater.set_states(states)

    def after_epoch(self):
        if not self.save:
            return
        t = self.trainer
        arg, _ = t.epoch_params()
        updater = _updater(t.module)
        path = states_path(self.prefix, t.epoch + 1)
        if updater is None:
            self.logger.warning('optimizer state cannot be read here (distributed kvstore): '
                                '%s holds no momentum', path)
        states = updater.get_states(dump_optimizer=False) if updater is not None else None
        save_training_state(self.prefix, t.epoch + 1, states,
                            {n: arg[n] for n in exact_param_names(arg, self.bbox_layers)})


# ---------------------------------------------------------------------- checkpoint
class Checkpoint(HookBase):
    """``PREFIX-%04d.params`` (epoch + 1) and ``PREFIX-symbol.json`` after every epoch,
    written atomically (:func:`dcn.callback.do_checkpoint`), the ``bbox_layers`` (the RoI
    head's box-regression layers) un-normalised by ``means`` / ``stds``."""

    def __init__(self, prefix, means, stds, bbox_layers=BBOX_LAYERS, logger=None):
        self.prefix = prefix
        self.save = do_checkpoint(prefix, means, stds, _logger(logger), bbox_layers=bbox_layers)

    def after_epoch(self):
        t = self.trainer
        arg, aux = t.epoch_params()
        self.save(t.epoch, t.module.symbol, arg, aux)


# ---------------------------------------------------------------------- evaluation
class EvalHook(HookBase):
    """``eval_function(trainer)`` after every ``period`` epochs and after the last one; its
    result (e.g. a dict of metrics) is logged and kept in ``results`` as (epoch number,
    result)."""

    def __init__(self, eval_function, period=1, logger=None):
        if int(period) <= 0:
            raise ValueError('EvalHook: period must be positive, got %r' % (period,))
        self.eval_function = eval_function
        self.period = int(period)
        self.logger = _logger(logger)
        self.results = []

    def after_epoch(self):
        t = self.trainer
        done = t.epoch + 1
        if done % self.period and done != t.end_epoch:
            return
        result = self.eval_function(t)
        self.results.append((done, result))
        self.logger.info('Epoch[%d] evaluation: %s', t.epoch, result)
