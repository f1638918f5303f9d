"""The training loop: a :class:`Trainer` runs the epochs and batches of a task's data loader
through an ``mx.mod.Module`` and calls its hooks (:class:`HookBase`) at fixed points; what a
training does besides forward, backward and update (logging, the learning-rate schedule,
divergence checks, checkpoints, the training state for resuming, evaluation) is a hook
(:mod:`dcn.engine.hooks`). :func:`dcn.train.train_net` builds the module, the loader and the
hooks from a configuration; a family supplies its model, loader and metrics, not a loop.

One iteration: ``before_step``, ``forward_backward(batch)``, ``after_backward``, ``update()``,
``update_metric(metric, batch.label)``, ``after_step``. One epoch: ``before_epoch``, the
metric reset, the global generators seeded with :func:`epoch_seed` (``seed``, epoch) and the
loader set to the epoch, the iterations, ``after_epoch``. Before the first epoch every
hook's ``configure_optimizer(params)`` may set optimizer parameters (e.g. the learning rate
and its scheduler), the module's optimizer is created, then ``before_train``;
``after_train`` ends the training, also when a hook or the loop raised.
"""
import random
import weakref

import mxnet as mx
import numpy as np

__all__ = ['HookBase', 'Trainer', 'epoch_seed', 'seed_everything', 'HOOK_STAGES']

#: the points of the loop at which the hooks are called, in the order of a training
HOOK_STAGES = ('configure_optimizer', 'before_train', 'before_epoch', 'before_step',
               'after_backward', 'after_step', 'after_epoch', 'after_train')


def seed_everything(seed):
    """Seed python's, NumPy's and MXNet's global generators."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def epoch_seed(seed, epoch):
    """Seed of the global generators (python, numpy, mx.random) for epoch ``epoch``: a pure
    function of (``seed``, ``epoch``), so that a resumed epoch replays an uninterrupted one."""
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 0xe90c])
    return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


class HookBase(object):
    """A hook of the :class:`Trainer`: override the stages it acts at. ``self.trainer`` (a
    weak proxy, set by :meth:`Trainer.register_hooks`) gives the loop's state: ``module``,
    ``loader``, ``metric``, ``epoch``, ``nbatch``, ``batch``, ``begin_epoch``,
    ``end_epoch``, :meth:`Trainer.outputs` and :meth:`Trainer.epoch_params`."""

    trainer = None

    def configure_optimizer(self, params):
        """Edit, in place, the keyword arguments of the optimizer before it is created."""

    def before_train(self):
        """After the optimizer is created, before the first epoch."""

    def before_epoch(self):
        """Before the epoch's metric reset, seeding and loader positioning."""

    def before_step(self):
        """Before ``forward_backward`` of ``trainer.batch``."""

    def after_backward(self):
        """After the backward pass, before the parameters are updated."""

    def after_step(self):
        """After the update and the metric update of the iteration."""

    def after_epoch(self):
        """After the epoch's last iteration."""

    def after_train(self):
        """After the last epoch, or when the training raised."""


class Trainer(object):
    """Epoch / batch loop of ``module`` (bound and initialised) over ``loader``.

    :param module: ``mx.mod.Module`` bound for training, parameters initialised
    :param loader: the task's data iterator; with ``set_epoch(seed, epoch)`` it is set to
        each epoch (its data order a function of the two), otherwise reset after each epoch
    :param metric: ``mx.metric.EvalMetric`` updated with the module's outputs
    :param begin_epoch, end_epoch: epochs ``begin_epoch .. end_epoch - 1`` are run
    :param seed: the global generators are seeded with ``epoch_seed(seed, epoch)`` at each
        epoch start
    :param optimizer, optimizer_params, kvstore: given to ``module.init_optimizer`` (after
        the hooks' ``configure_optimizer``)
    :param hooks: :class:`HookBase` instances, called in this order at every stage
    """

    def __init__(self, module, loader, metric, begin_epoch, end_epoch, seed=0,
                 optimizer='sgd', optimizer_params=None, kvstore='local', hooks=()):
        begin_epoch, end_epoch = int(begin_epoch), int(end_epoch)
        if end_epoch <= begin_epoch:
            raise ValueError('Trainer: end_epoch (%d) must be larger than begin_epoch (%d)'
                             % (end_epoch, begin_epoch))
        self.module = module
        self.loader = loader
        self.metric = metric
        self.begin_epoch = begin_epoch
        self.end_epoch = end_epoch
        self.seed = int(seed)
        self.optimizer = optimizer
        self.optimizer_params = dict(optimizer_params or {})
        self.kvstore = kvstore
        self.epoch = begin_epoch
        self.nbatch = 0
        self.batch = None
        self._params = None
        self.hooks = []
        self.register_hooks(hooks)

    def register_hooks(self, hooks):
        """Append ``hooks`` (called after those already registered)."""
        for hook in hooks:
            if not isinstance(hook, HookBase):
                raise TypeError('Trainer hooks must be HookBase instances, got %r' % (hook,))
            hook.trainer = weakref.proxy(self)
            self.hooks.append(hook)

    def _call(self, stage, *args):
        for hook in self.hooks:
            getattr(hook, stage)(*args)

    # ------------------------------------------------------------------ state for the hooks
    def outputs(self):
        """[(output name, NDArray)] of the current iteration."""
        return list(zip(self.module.symbol.list_outputs(), self.module.get_outputs()))

    def epoch_params(self):
        """(arg_params, aux_params) at the end of the current epoch, read once per epoch.
        BatchNorm writes its moving statistics in the backward pass without the read in
        ``get_params`` waiting for it: the engine is drained first so that they are current."""
        if self._params is None:
            mx.nd.waitall()
            self._params = self.module.get_params()
        return self._params

    # ------------------------------------------------------------------ loop
    def train(self):
        """Run the epochs; returns ``end_epoch``."""
        try:
            self._call('configure_optimizer', self.optimizer_params)
            self.module.init_optimizer(kvstore=self.kvstore, optimizer=self.optimizer,
                                       optimizer_params=self.optimizer_params)
            self._call('before_train')
            for epoch in range(self.begin_epoch, self.end_epoch):
                self.run_epoch(epoch)
        finally:
            self._call('after_train')
        return self.end_epoch

    def run_epoch(self, epoch):
        self.epoch, self.nbatch, self.batch, self._params = epoch, 0, None, None
        self._call('before_epoch')
        self.metric.reset()
        # every random draw of the epoch (data order, scales, anchor and RoI sampling) is a
        # function of (seed, epoch): resuming replays the epoch exactly
        seed_everything(epoch_seed(self.seed, epoch))
        if hasattr(self.loader, 'set_epoch'):
            self.loader.set_epoch(self.seed, epoch)
        elif epoch > self.begin_epoch:
            self.loader.reset()
        for nbatch, batch in enumerate(self.loader):
            self.nbatch, self.batch = nbatch, batch
            self.run_step(batch)
        self._call('after_epoch')

    def run_step(self, batch):
        self._call('before_step')
        self.module.forward_backward(batch)
        self._call('after_backward')
        self.module.update()
        self.module.update_metric(self.metric, batch.label)
        self._call('after_step')
