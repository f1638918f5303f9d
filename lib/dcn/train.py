"""Shared end-to-end training loop for R-FCN and Faster R-CNN.

``train_net(cfg, 'rfcn' | 'faster_rcnn', cfg_name)`` trains the network
``<symbol_package>.symbols.<cfg.symbol>`` on ``cfg.dataset.image_set`` and writes
``<output_path>/<cfg name>/<image_set>/<model_prefix>-%04d.params`` after every
epoch (box-regression layers un-normalised, written atomically), plus a log
file holding the configuration and the training speed/metrics.

Distributed training: ``rank`` / ``num_workers`` shard the roidb and only rank 0
writes checkpoints; a ``dist_*`` kvstore gives both when they are not passed.
"""
import importlib
import logging
import os
import pprint
import random
import sys
import time

import mxnet as mx
import numpy as np

from dcn.callback import Speedometer, do_checkpoint
from dcn.checkpoint import (BBOX_LAYERS, TrainingStateFormatError, atomic_write,
                            check_param_shapes, last_epoch, load_param, load_training_state,
                            normalize_bbox_params, param_path, read_mxnet_optimizer_states,
                            save_training_state, split_test_copies, states_path,
                            symbol_argument_order, symbol_path)
from dcn.config import config_to_dict, get_contexts, get_scales, original_quirks
from dcn.metric import get_train_metrics

__all__ = ['train_net', 'shard_roidb', 'create_logger', 'WarmupMultiFactorScheduler',
           'lr_schedule', 'fixed_param_names', 'get_symbol_instance', 'output_dir',
           'TrainingDivergedError', 'epoch_seed']

LOGGER_NAME = 'dcn'


class TrainingDivergedError(RuntimeError):
    """A loss or parameter became NaN or infinite."""


def output_dir(cfg, cfg_name, image_set, output_path=None):
    """``<output_path>/<cfg name>/<image_set with '+' -> '_'>``."""
    root = output_path or cfg.output_path
    name = cfg_name or cfg.get('config_name') or 'default'
    return os.path.join(root, name, str(image_set).replace('+', '_'))


def create_logger(final_output_path, cfg_name, tag='train'):
    """Logger ``dcn`` writing to the console and ``<final_output_path>/<cfg>_<tag>_<time>.log``."""
    os.makedirs(final_output_path, exist_ok=True)
    log_file = os.path.join(final_output_path, '%s_%s_%s.log'
                            % (cfg_name, tag, time.strftime('%Y-%m-%d-%H-%M-%S')))
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        if getattr(h, '_dcn_handler', False):
            logger.removeHandler(h)
            h.close()
    fmt = logging.Formatter('%(asctime)-15s %(message)s')
    file_handler = logging.FileHandler(log_file)
    console = logging.StreamHandler(sys.stdout)
    for h in (file_handler, console):
        h.setFormatter(fmt)
        h._dcn_handler = True
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.log_file = log_file
    return logger


def get_symbol_instance(symbol_package, cfg):
    """Instance of ``<symbol_package>.symbols.<cfg.symbol>.<cfg.symbol>``."""
    if not cfg.symbol:
        raise ValueError('config key "symbol" is empty: name a network module of %s.symbols'
                         % symbol_package)
    module_name = '%s.symbols.%s' % (symbol_package, cfg.symbol)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError('config key "symbol": cannot import network module %s (%s)'
                         % (module_name, exc)) from exc
    if not hasattr(module, cfg.symbol):
        raise ValueError('config key "symbol": module %s has no class %s'
                         % (module_name, cfg.symbol))
    return getattr(module, cfg.symbol)()


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


def fixed_param_names(sym, prefixes, input_names=()):
    """Arguments of ``sym`` whose name contains one of ``prefixes`` (the original's rule)."""
    inputs = set(input_names)
    return [n for n in sym.list_arguments()
            if n not in inputs and any(p in n for p in prefixes)]


def _seed_everything(seed):
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def epoch_seed(seed, epoch):
    """Seed of the global generators (python, numpy, mx.random) for epoch ``epoch``: a pure
    function of (``seed``, ``epoch``), so that a resumed epoch replays an uninterrupted one."""
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 0xe90c])
    return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


def _updater(mod):
    """The module's local optimizer updater, or None (e.g. distributed kvstore)."""
    if getattr(mod, '_update_on_kvstore', False):
        return getattr(getattr(mod, '_kvstore', None), '_updater', None)
    return getattr(mod, '_updater', None)


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


def _exact_param_names(arg_params, bbox_layers=BBOX_LAYERS):
    """Parameters whose ``.params`` copy is not bit-exact (un-normalised box regression)."""
    names = []
    for layer, _ in bbox_layers:
        names += [n for n in (layer + '_weight', layer + '_bias') if n in arg_params]
    return names


def _save_training_state(mod, prefix, epoch, arg_params, logger, bbox_layers=BBOX_LAYERS):
    updater = _updater(mod)
    if updater is None:
        logger.warning('optimizer state cannot be read here (distributed kvstore): %s holds '
                       'no momentum', states_path(prefix, epoch))
    states = updater.get_states(dump_optimizer=False) if updater is not None else None
    save_training_state(prefix, epoch, states,
                        {n: arg_params[n] for n in _exact_param_names(arg_params, bbox_layers)})


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


def _module_states(mod, by_name):
    """Updater state bytes for ``mod`` from states by parameter name."""
    import pickle
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


def _copy_state(state):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_copy_state(s) for s in state)
    return state.copy()


def _restore_training_state(cfg, prefix, epoch, arg_params, logger):
    """Optimizer state saved with ``epoch``: bytes (this project's ``.states``), states by
    name (the original's ``.states``) or None if absent. With this project's file, replaces,
    in place, the box-regression parameters by their exact in-memory values."""
    try:
        states, exact = load_training_state(prefix, epoch)
    except FileNotFoundError:
        logger.warning('%s not found: resuming with zero momentum', states_path(prefix, epoch))
        return None
    except TrainingStateFormatError:
        return _original_states(prefix, epoch, arg_params, logger)
    for name, value in exact.items():
        if name in arg_params and tuple(arg_params[name].shape) == tuple(value.shape):
            arg_params[name] = mx.nd.array(value, dtype=value.dtype)
    logger.info('restored training state from %s', states_path(prefix, epoch))
    return states


def _load_initial_params(cfg, prefix, begin_epoch, logger, bbox_layers=BBOX_LAYERS):
    """(arg_params, aux_params, begin_epoch, from_scratch)."""
    means, stds = cfg.TRAIN.BBOX_MEANS, cfg.TRAIN.BBOX_STDS
    if cfg.TRAIN.RESUME:
        epoch = begin_epoch if begin_epoch > 0 and os.path.isfile(param_path(prefix, begin_epoch)) \
            else last_epoch(prefix)
        if epoch is None:
            raise FileNotFoundError('TRAIN.RESUME is set but no checkpoint %s-NNNN.params exists'
                                    % prefix)
        logger.info('resuming training from %s', param_path(prefix, epoch))
        arg, aux = load_param(prefix, epoch, convert=True)
        return _training_params(arg, means, stds, param_path(prefix, epoch), logger,
                                bbox_layers), aux, \
            epoch, False
    pretrained = str(cfg.network.pretrained or '')
    if not pretrained:
        logger.info('network.pretrained is empty: training from scratch')
        return {}, {}, begin_epoch, True
    path = param_path(pretrained, cfg.network.pretrained_epoch)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            'pretrained model not found: %s. Put the ImageNet model there (network.pretrained '
            '= %r, network.pretrained_epoch = %d), or set network.pretrained to an empty string '
            'to train from scratch.' % (path, pretrained, cfg.network.pretrained_epoch))
    logger.info('loading pretrained model %s', path)
    arg, aux = load_param(pretrained, cfg.network.pretrained_epoch, convert=True)
    return _training_params(arg, means, stds, path, logger, bbox_layers), aux, begin_epoch, \
        False


def _training_params(arg, means, stds, path, logger, bbox_layers=BBOX_LAYERS):
    """Parameters as trained (box regression normalised) from a ``.params`` file: ours and
    the released models hold it un-normalised; the original's training checkpoints hold it
    as trained plus an un-normalised ``NAME_test`` copy."""
    arg, copies = split_test_copies(arg)
    if copies:
        logger.info('%s was written by the original training code: using %s as trained '
                    '(not %s)', path, ', '.join(c[:-len('_test')] for c in copies),
                    ', '.join(copies))
        return arg
    return normalize_bbox_params(arg, means, stds, bbox_layers)


def _check_finite(arrays, what, epoch, nbatch):
    for name, arr in arrays:
        value = arr.asnumpy() if hasattr(arr, 'asnumpy') else np.asarray(arr)
        if not np.all(np.isfinite(value)):
            msg = ('training diverged: %s %s is NaN or infinite at epoch %d, iteration %d; '
                   'stopping (checkpoints already written are kept)' % (what, name, epoch, nbatch))
            logging.getLogger(LOGGER_NAME).error(msg)  # in the training log file too
            raise TrainingDivergedError(msg)


def _max_shapes(cfg, loader, batch_size):
    scales = get_scales(cfg)
    max_h = max(s[0] for s in scales)
    max_w = max(s[1] for s in scales)
    stride = int(cfg.network.IMAGE_STRIDE)
    if stride > 0:
        max_h = int(np.ceil(max_h / float(stride)) * stride)
        max_w = int(np.ceil(max_w / float(stride)) * stride)
    max_data = [('data', (batch_size, 3, max_h, max_w)),
                ('im_info', (batch_size, 3)), ('gt_boxes', (batch_size, 100, 5))]
    per_dev = batch_size // len(loader.ctx)
    _, label = loader.infer_shape([('data', (per_dev, 3, max_h, max_w))])
    label = [(k, (batch_size,) + tuple(s[1:])) for k, s in label]
    return max_data, label


def shard_roidb(roidb, rank, num_workers):
    """Entries ``rank, rank + num_workers, ...`` of ``roidb`` padded (from its start) to
    ``ceil(len / num_workers)``: every worker gets as many images, hence as many
    iterations per epoch, which synchronous parameter-server training requires."""
    rank, num_workers = int(rank), int(num_workers)
    if not 0 <= rank < num_workers:
        raise ValueError('worker rank %d is not in [0, %d)' % (rank, num_workers))
    if len(roidb) == 0:
        raise ValueError('cannot shard an empty roidb')
    per_worker = -(-len(roidb) // num_workers)
    index = [i % len(roidb) for i in range(per_worker * num_workers)]
    return [roidb[i] for i in index[rank::num_workers]]


def _updates_per_iteration(kvstore):
    """Optimizer updates the kvstore servers make per iteration of one worker."""
    if isinstance(kvstore, mx.kvstore.KVStore) and kvstore.type.startswith('dist') \
            and 'async' in kvstore.type:
        return kvstore.num_workers
    return 1


def train_net(cfg, symbol_package, cfg_name=None, ctx=None, frequent=None, logger=None,
              output_path=None, kvstore=None, begin_epoch=None, end_epoch=None, roidb=None,
              rank=None, num_workers=None, bind_max_shapes=True, stage=None):
    """Train end to end; returns (checkpoint prefix, last epoch written).

    :param cfg: loaded configuration (``dcn.config.load_config``)
    :param symbol_package: 'rfcn' or 'faster_rcnn'
    :param ctx: list of contexts (default: ``cfg.gpus``, CPU when empty)
    :param roidb: training roidb (default: ``cfg.dataset.image_set`` with flipping, filtered)
    :param kvstore: kvstore name or ``mx.kvstore.KVStore`` (default ``default.kvstore``)
    :param rank, num_workers: worker index/count for distributed training (default: from a
        ``dist_*`` kvstore; the roidb is sharded with :func:`shard_roidb`)
    :param stage: None (end to end), 'rpn' (the RPN alone) or 'rcnn' (the RoI head on the
        precomputed proposals of ``roidb``): :func:`dcn.modeling.stages.stage_view`
    """
    cfg_name = cfg_name or cfg.get('config_name') or 'default'
    image_set = cfg.dataset.image_set
    final_output_path = output_dir(cfg, cfg_name, image_set, output_path)
    if logger is None:
        logger = create_logger(final_output_path, cfg_name, 'train')
    os.makedirs(final_output_path, exist_ok=True)
    prefix = os.path.join(final_output_path, cfg.TRAIN.model_prefix or 'e2e')
    logger.info('training config:\n%s', pprint.pformat(config_to_dict(cfg)))

    kvstore = kvstore or cfg.default.kvstore
    kv = kvstore if isinstance(kvstore, mx.kvstore.KVStore) else None
    if kv is None and str(kvstore).startswith('dist'):
        kv = mx.kvstore.create(kvstore)
    if kv is not None and kv.type.startswith('dist'):
        rank = kv.rank if rank is None else rank
        num_workers = kv.num_workers if num_workers is None else num_workers
    rank = 0 if rank is None else int(rank)
    num_workers = 1 if num_workers is None else int(num_workers)

    seed = int(cfg.TRAIN.get('seed', 0))
    _seed_everything(seed + rank)

    ctx = list(ctx) if ctx else get_contexts(cfg)
    batch_size = len(ctx) * int(cfg.TRAIN.BATCH_IMAGES)

    sym_instance = get_symbol_instance(symbol_package, cfg)
    if stage is not None:
        from dcn.modeling.stages import stage_view
        sym_instance = stage_view(sym_instance, stage)
        bind_max_shapes = False  # stage inputs (e.g. the proposals) vary per batch
    sym = sym_instance.get_symbol(cfg, is_train=True)

    if roidb is None:
        from dcn.dataset import filter_roidb, load_gt_roidb
        _, roidb = load_gt_roidb(cfg, image_set, flip=cfg.TRAIN.FLIP)
        roidb = filter_roidb(roidb)
    if num_workers > 1:
        roidb = shard_roidb(roidb, rank, num_workers)
        logger.info('worker %d of %d: %d images in this shard', rank, num_workers, len(roidb))

    # the task's data loader (anchor targets on the levels of the model's proposal generator)
    loader = sym_instance.build_train_loader(sym, roidb, cfg, batch_size, ctx, seed + rank)
    try:
        return _fit(cfg, sym, sym_instance, loader, ctx, batch_size, prefix, logger, kv or kvstore,
                    rank, frequent, begin_epoch, end_epoch, bind_max_shapes)
    finally:
        loader.close()


def _fit(cfg, sym, sym_instance, loader, ctx, batch_size, prefix, logger, kvstore, rank,
         frequent, begin_epoch, end_epoch, bind_max_shapes):
    begin_epoch = int(cfg.TRAIN.begin_epoch if begin_epoch is None else begin_epoch)
    end_epoch = int(cfg.TRAIN.end_epoch if end_epoch is None else end_epoch)
    bbox_layers = getattr(sym_instance, 'bbox_layers', BBOX_LAYERS)
    arg_params, aux_params, begin_epoch, from_scratch = _load_initial_params(
        cfg, prefix, begin_epoch, logger, bbox_layers)
    if end_epoch <= begin_epoch:
        raise ValueError('TRAIN.end_epoch (%d) must be larger than the first epoch (%d)'
                         % (end_epoch, begin_epoch))

    data_shapes = [(d.name, d.shape) for d in loader.provide_data]
    label_shapes = [(d.name, d.shape) for d in loader.provide_label]
    shape_dict = dict(data_shapes + label_shapes)
    if hasattr(sym_instance, 'infer_shape') and getattr(sym_instance, 'sym', None) is not None:
        sym_instance.infer_shape(shape_dict)
    source, opt_states = None, None
    if cfg.TRAIN.RESUME:
        source = param_path(prefix, begin_epoch)
        opt_states = _restore_training_state(cfg, prefix, begin_epoch, arg_params, logger)
    elif not from_scratch:
        source = param_path(str(cfg.network.pretrained), cfg.network.pretrained_epoch)
    try:
        arg_params, aux_params = sym_instance.init_weight(cfg, arg_params, aux_params) or \
            (arg_params, aux_params)
        check_param_shapes(sym, arg_params, aux_params, shape_dict, source=source)
    except (KeyError, ValueError) as exc:
        msg = exc.args[0] if len(exc.args) == 1 else str(exc)
        if source is None or source in str(msg):
            raise
        raise ValueError('%s: %s' % (source, msg)) from exc

    data_names = [n for n, _ in data_shapes]
    label_names = [n for n, _ in label_shapes]
    fixed = fixed_param_names(sym, cfg.network.FIXED_PARAMS, data_names + label_names)
    logger.info('fixed parameters: %d (%s)', len(fixed), ', '.join(cfg.network.FIXED_PARAMS))

    mod = mx.mod.Module(sym, data_names=data_names, label_names=label_names, logger=logger,
                        context=ctx, fixed_param_names=fixed)
    if bind_max_shapes:
        max_data, max_label = _max_shapes(cfg, loader, batch_size)
        mod.bind(max_data, max_label, for_training=True)
    else:
        mod.bind(data_shapes, label_shapes, for_training=True)
    mod.init_params(arg_params=arg_params, aux_params=aux_params, allow_missing=False,
                    force_init=True)

    # the servers count one update per iteration of every worker in dist_async, per global
    # iteration (all workers together) in dist_sync; the shards have equal lengths
    per_iter = _updates_per_iteration(kvstore)
    lr, scheduler = lr_schedule(cfg, begin_epoch, loader.iters_per_epoch * per_iter)
    scheduler.warmup_step *= per_iter
    logger.info('learning rate %g, steps at iterations %s, warmup %s', lr, scheduler.step,
                scheduler.warmup)
    clip = cfg.TRAIN.get('clip_gradient', None)
    optimizer_params = {'momentum': float(cfg.TRAIN.momentum), 'wd': float(cfg.TRAIN.wd),
                        'learning_rate': lr, 'lr_scheduler': scheduler, 'rescale_grad': 1.0}
    if clip is not None:
        optimizer_params['clip_gradient'] = float(clip)
    mod.init_optimizer(kvstore=kvstore, optimizer='sgd', optimizer_params=optimizer_params)
    mults = _lr_multipliers(mod)
    if mults:
        logger.info('learning-rate multipliers: %s',
                    ', '.join('%s x%g' % kv for kv in sorted(mults.items())))
    if opt_states is not None:
        if _updater(mod) is None:
            logger.warning('optimizer state of %s not restored (distributed kvstore)', source)
        else:
            if isinstance(opt_states, _StatesByName):
                opt_states = _module_states(mod, opt_states)
            _updater(mod).set_states(opt_states)

    metric = get_train_metrics(cfg, getattr(sym_instance, 'names', None))
    speedometer = Speedometer(batch_size, frequent or cfg.default.frequent, logger)
    checkpoint = do_checkpoint(prefix, cfg.TRAIN.BBOX_MEANS, cfg.TRAIN.BBOX_STDS, logger,
                               bbox_layers=bbox_layers)

    seed = int(cfg.TRAIN.get('seed', 0)) + rank
    for epoch in range(begin_epoch, end_epoch):
        tic = time.time()
        metric.reset()
        # every random draw of the epoch (data order, scales, anchor and RoI sampling) is a
        # function of (seed, epoch): resuming replays the epoch exactly
        _seed_everything(epoch_seed(seed, epoch))
        if hasattr(loader, 'set_epoch'):
            loader.set_epoch(seed, epoch)
        elif epoch > begin_epoch:
            loader.reset()
        nbatch = 0
        for nbatch, batch in enumerate(loader):
            mod.forward_backward(batch)
            _check_finite(zip(sym.list_outputs(), mod.get_outputs()), 'output', epoch, nbatch)
            mod.update()
            mod.update_metric(metric, batch.label)
            speedometer(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metric,
                                               locals=None))
        for name, value in metric.get_name_value():
            logger.info('Epoch[%d] Train-%s=%f', epoch, name, value)
        logger.info('Epoch[%d] Time cost=%.3f', epoch, time.time() - tic)
        # BatchNorm writes its moving statistics in the backward pass without the read in
        # get_params waiting for it: drain the engine so the saved aux states are current
        mx.nd.waitall()
        arg, aux = mod.get_params()
        _check_finite(sorted(arg.items()) + sorted(aux.items()), 'parameter', epoch, nbatch)
        if rank == 0:
            # the state first: a .params file marks a complete checkpoint
            _save_training_state(mod, prefix, epoch + 1, arg, logger, bbox_layers)
            checkpoint(epoch, sym, arg, aux)
    return prefix, end_epoch


def save_config(cfg, path):
    """Write the configuration as YAML (atomically)."""
    import yaml

    def _write(tmp):
        with open(tmp, 'w') as f:
            yaml.safe_dump(config_to_dict(cfg), f, default_flow_style=False)
    atomic_write(path, _write)
