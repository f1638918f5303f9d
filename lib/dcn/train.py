"""Training of every model family (R-FCN, Faster R-CNN, FPN, DeepLab) from a configuration.

``train_net(cfg, 'rfcn' | 'faster_rcnn' | ..., cfg_name)`` trains the network
``<symbol_package>.symbols.<cfg.symbol>`` on ``cfg.dataset.image_set`` and writes
``<output_path>/<cfg name>/<image_set>/<model_prefix>-%04d.params`` after every
epoch (box-regression layers un-normalised, written atomically), plus a log
file holding the configuration and the training speed/metrics.

The model supplies its task's pieces (:class:`dcn.modeling.base.Model`):
``load_train_db(cfg, image_set)`` (the training records), ``build_train_loader``,
``train_metrics(cfg)``, ``max_train_shapes(cfg, loader, batch_size)`` and ``bbox_layers``;
``train_net`` loads the initial parameters, binds the module and runs the
:class:`dcn.engine.trainer.Trainer` with the hooks of :mod:`dcn.engine.hooks`.

Distributed training: ``rank`` / ``num_workers`` shard the roidb and only rank 0
writes checkpoints; a ``dist_*`` kvstore gives both when they are not passed.
"""
import importlib
import logging
import os
import pprint
import sys
import time

import mxnet as mx

from dcn.checkpoint import (BBOX_LAYERS, atomic_write, check_param_shapes, last_epoch,
                            load_param, normalize_bbox_params, param_path, split_test_copies)
from dcn.config import config_to_dict, get_contexts
from dcn.engine.hooks import (Checkpoint, DivergenceStop, LRSchedule, MetricLogger,
                              TrainingDivergedError, TrainingState, WarmupMultiFactorScheduler,
                              lr_schedule, updates_per_iteration)
from dcn.engine.trainer import Trainer, epoch_seed, seed_everything

__all__ = ['train_net', 'shard_roidb', 'create_logger', 'WarmupMultiFactorScheduler',
           'lr_schedule', 'fixed_param_names', 'get_symbol_instance', 'output_dir',
           'TrainingDivergedError', 'epoch_seed', 'training_hooks']

LOGGER_NAME = 'dcn'


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


def fixed_param_names(sym, prefixes, input_names=()):
    """Arguments of ``sym`` whose name contains one of ``prefixes`` (the original's rule)."""
    inputs = set(input_names)
    return [n for n in sym.list_arguments()
            if n not in inputs and any(p in n for p in prefixes)]


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


def train_net(cfg, symbol_package, cfg_name=None, ctx=None, frequent=None, logger=None,
              output_path=None, kvstore=None, begin_epoch=None, end_epoch=None, roidb=None,
              rank=None, num_workers=None, bind_max_shapes=True, stage=None, hooks=()):
    """Train end to end; returns (checkpoint prefix, last epoch written).

    :param cfg: loaded configuration (``dcn.config.load_config``)
    :param symbol_package: the family package ('rfcn', 'faster_rcnn', 'fpn', 'deeplab')
    :param ctx: list of contexts (default: ``cfg.gpus``, CPU when empty)
    :param roidb: training records (default: the model's ``load_train_db(cfg,
        cfg.dataset.image_set)``, e.g. the filtered roidb with flipped copies)
    :param kvstore: kvstore name or ``mx.kvstore.KVStore`` (default ``default.kvstore``)
    :param rank, num_workers: worker index/count for distributed training (default: from a
        ``dist_*`` kvstore; the roidb is sharded with :func:`shard_roidb`)
    :param stage: None (end to end), 'rpn' (the RPN alone) or 'rcnn' (the RoI head on the
        precomputed proposals of ``roidb``): :func:`dcn.modeling.stages.stage_view`
    :param hooks: further :class:`dcn.engine.trainer.HookBase` instances (e.g. an
        :class:`dcn.engine.hooks.EvalHook`), called after those of :func:`training_hooks`
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
    seed_everything(seed + rank)

    ctx = list(ctx) if ctx else get_contexts(cfg)
    batch_size = len(ctx) * int(cfg.TRAIN.BATCH_IMAGES)

    model = get_symbol_instance(symbol_package, cfg)
    if stage is not None:
        from dcn.modeling.stages import stage_view
        model = stage_view(model, stage)
        bind_max_shapes = False  # stage inputs (e.g. the proposals) vary per batch
    sym = model.get_symbol(cfg, is_train=True)

    if roidb is None:
        roidb = model.load_train_db(cfg, image_set)  # the task's records
    if num_workers > 1:
        roidb = shard_roidb(roidb, rank, num_workers)
        logger.info('worker %d of %d: %d images in this shard', rank, num_workers, len(roidb))

    # the task's data loader (e.g. anchor targets on the levels of the proposal generator)
    loader = model.build_train_loader(sym, roidb, cfg, batch_size, ctx, seed + rank)
    try:
        begin_epoch = int(cfg.TRAIN.begin_epoch if begin_epoch is None else begin_epoch)
        end_epoch = int(cfg.TRAIN.end_epoch if end_epoch is None else end_epoch)
        state = TrainingState(prefix, model.bbox_layers, save=rank == 0, logger=logger)
        mod, begin_epoch = _build_module(cfg, sym, model, loader, ctx, batch_size, prefix,
                                         logger, begin_epoch, end_epoch, bind_max_shapes,
                                         state)
        trainer = Trainer(mod, loader, model.train_metrics(cfg), begin_epoch, end_epoch,
                          seed=seed + rank, optimizer='sgd',
                          optimizer_params=_optimizer_params(cfg), kvstore=kv or kvstore)
        trainer.register_hooks(training_hooks(
            cfg, model, prefix, begin_epoch, loader.iters_per_epoch, batch_size,
            frequent or cfg.default.frequent, updates_per_iteration(kv or kvstore), rank,
            state, logger))
        trainer.register_hooks(hooks)
        trainer.train()
    finally:
        loader.close()
    return prefix, end_epoch


def training_hooks(cfg, model, prefix, begin_epoch, iters_per_epoch, batch_size, frequent,
                   updates_per_iter=1, rank=0, state=None, logger=None):
    """The hooks of a training, in their order: learning-rate schedule, metric logging,
    divergence stop, training state (``state``, or one writing on rank 0) and, on rank 0,
    the checkpoints (``model.bbox_layers`` un-normalised)."""
    bbox_layers = model.bbox_layers
    if state is None:
        state = TrainingState(prefix, bbox_layers, save=rank == 0, logger=logger)
    hooks = [LRSchedule(cfg, begin_epoch, iters_per_epoch, updates_per_iter, logger),
             MetricLogger(batch_size, frequent, logger),
             DivergenceStop(logger),
             state]
    if rank == 0:
        # after the training state: a .params file marks a complete checkpoint
        hooks.append(Checkpoint(prefix, cfg.TRAIN.BBOX_MEANS, cfg.TRAIN.BBOX_STDS,
                                bbox_layers, logger))
    return hooks


def _optimizer_params(cfg):
    """SGD's parameters but the learning rate and its schedule (:class:`LRSchedule`)."""
    params = {'momentum': float(cfg.TRAIN.momentum), 'wd': float(cfg.TRAIN.wd),
              'rescale_grad': 1.0}
    clip = cfg.TRAIN.get('clip_gradient', None)
    if clip is not None:
        params['clip_gradient'] = float(clip)
    return params


def _build_module(cfg, sym, model, loader, ctx, batch_size, prefix, logger, begin_epoch,
                  end_epoch, bind_max_shapes, state):
    """(module bound for training with its initial parameters, first epoch): the
    pretrained model, a resumed checkpoint (its training state read into ``state``) or
    nothing, completed by ``model.init_weight``."""
    bbox_layers = model.bbox_layers
    arg_params, aux_params, begin_epoch, from_scratch = _load_initial_params(
        cfg, prefix, begin_epoch, logger, bbox_layers)
    if end_epoch <= begin_epoch:
        raise ValueError('TRAIN.end_epoch (%d) must be larger than the first epoch (%d)'
                         % (end_epoch, begin_epoch))

    data_shapes = [(d.name, d.shape) for d in loader.provide_data]
    label_shapes = [(d.name, d.shape) for d in loader.provide_label]
    shape_dict = dict(data_shapes + label_shapes)
    if getattr(model, 'sym', None) is not None:
        model.infer_shape(shape_dict)
    source = None
    if cfg.TRAIN.RESUME:
        source = param_path(prefix, begin_epoch)
        state.load(begin_epoch, arg_params)
    elif not from_scratch:
        source = param_path(str(cfg.network.pretrained), cfg.network.pretrained_epoch)
    try:
        arg_params, aux_params = model.init_weight(cfg, arg_params, aux_params) or \
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
        max_data, max_label = model.max_train_shapes(cfg, loader, batch_size)
        mod.bind(max_data, max_label, for_training=True)
    else:
        mod.bind(data_shapes, label_shapes, for_training=True)
    mod.init_params(arg_params=arg_params, aux_params=aux_params, allow_missing=False,
                    force_init=True)
    return mod, begin_epoch


def save_config(cfg, path):
    """Write the configuration as YAML (atomically)."""
    import yaml

    def _write(tmp):
        with open(tmp, 'w') as f:
            yaml.safe_dump(config_to_dict(cfg), f, default_flow_style=False)
    atomic_write(path, _write)
