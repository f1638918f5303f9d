"""``train_end2end_main`` / ``test_main``: argument parsing around dcn.train and dcn.tester.

Both read ``--cfg FILE`` (an experiment YAML) and ignore options meant for the
other, so one command line can drive training followed by testing.
"""
import argparse
import logging
import os
import sys

from dcn.tools.cli import run

__all__ = ['train_end2end_main', 'test_main', 'train_test_main', 'parse_train_args',
           'parse_test_args']


def _base_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--cfg', required=True, help='experiment configuration file (YAML)')
    parser.add_argument('--gpus', default=None,
                        help="override 'gpus' (comma-separated ids; empty string for CPU)")
    parser.add_argument('--debug', action='store_true',
                        help='show the Python traceback of an error')
    return parser


def parse_train_args(argv=None):
    parser = _base_parser('Train an end-to-end detection network')
    parser.add_argument('--frequent', type=int, default=None,
                        help='log speed and metrics every N batches (default.frequent)')
    parser.add_argument('--output_path', default=None, help='override output_path')
    parser.add_argument('--begin_epoch', type=int, default=None)
    parser.add_argument('--end_epoch', type=int, default=None)
    parser.add_argument('--resume', action='store_true', help='set TRAIN.RESUME')
    args, _ = parser.parse_known_args(argv)
    return args


def parse_test_args(argv=None):
    parser = _base_parser('Test a detection network')
    parser.add_argument('--epoch', type=int, default=None, help='checkpoint epoch '
                        '(default TEST.test_epoch)')
    parser.add_argument('--prefix', default=None, help='checkpoint prefix (default: the '
                        'training output of this config)')
    parser.add_argument('--output_path', default=None, help='override output_path')
    parser.add_argument('--vis', action='store_true', help='draw detections to PNG files')
    parser.add_argument('--ignore_cache', action='store_true',
                        help='recompute detections even if cached')
    parser.add_argument('--thresh', type=float, default=None,
                        help='score threshold (default TEST.SCORE_THRESH)')
    args, _ = parser.parse_known_args(argv)
    return args


def load_family_config(symbol_package, path):
    """Import the family package (which may register its own config keys), then load
    ``path`` with the package's ``load_config`` (its own defaults, e.g. DeepLab's) or, when
    it has none, :func:`dcn.config.load_config`."""
    import importlib
    from dcn.config import load_config
    package = importlib.import_module(symbol_package)
    return getattr(package, 'load_config', load_config)(path)


def _load(args, symbol_package):
    from dcn.config import update_config
    cfg = load_family_config(symbol_package, args.cfg)
    overrides = {}
    if args.gpus is not None:
        overrides['gpus'] = args.gpus
    if getattr(args, 'output_path', None):
        overrides['output_path'] = args.output_path
    if getattr(args, 'resume', False):
        overrides['TRAIN'] = {'RESUME': True}
    if overrides:
        cfg = update_config(cfg, overrides, source='command line')
    return cfg


def _dist_kvstore(cfg):
    """The ``dist_*`` kvstore named by ``default.kvstore`` (its creation waits for every node
    of the job), or None."""
    name = str(cfg.default.kvstore)
    if not name.startswith('dist'):
        return None
    import mxnet as mx
    return mx.kvstore.create(name)


def _train(symbol_package, argv):
    """(prefix, last epoch, worker rank)."""
    # a process started as a parameter server or scheduler (DMLC_ROLE) serves and exits here
    from dcn.tools.launch import serve_if_server
    serve_if_server()
    from dcn.train import create_logger, output_dir, save_config, train_net
    args = parse_train_args(argv)
    cfg = _load(args, symbol_package)
    kv = _dist_kvstore(cfg)
    rank = kv.rank if kv is not None else 0
    name = cfg.config_name
    final = output_dir(cfg, name, cfg.dataset.image_set)
    logger = create_logger(final, name, 'train' if rank == 0 else 'train_rank%d' % rank)
    logger.info('command line: %s', vars(args))
    if kv is not None:
        logger.info('kvstore %s: worker rank %d of %d', kv.type, rank, kv.num_workers)
    if rank == 0:
        save_config(cfg, os.path.join(final, name + '.yaml'))
    prefix, epoch = train_net(cfg, symbol_package, name, frequent=args.frequent, logger=logger,
                              kvstore=kv, begin_epoch=args.begin_epoch,
                              end_epoch=args.end_epoch)
    return prefix, epoch, rank


def train_end2end_main(symbol_package, argv=None):
    """Parse arguments, train; returns (prefix, last epoch). A user's mistake is one line
    ``error: ...`` and exit status 1 (the traceback with ``--debug``)."""
    return run(lambda a: _train(symbol_package, a)[:2], argv)


def test_main(symbol_package, argv=None):
    """Parse arguments, test a checkpoint; returns the evaluation results."""
    return run(lambda a: _test(symbol_package, a), argv)


def _test(symbol_package, argv):
    from dcn.tester import test_net
    from dcn.train import create_logger, get_symbol_instance, output_dir
    args = parse_test_args(argv)
    cfg = _load(args, symbol_package)
    # a model may name its task's tester (e.g. segmentation); detection by default
    test_net = getattr(get_symbol_instance(symbol_package, cfg), 'test_net', test_net)
    name = cfg.config_name
    prefix = args.prefix or os.path.join(output_dir(cfg, name, cfg.dataset.image_set),
                                         cfg.TRAIN.model_prefix or 'e2e')
    epoch = cfg.TEST.test_epoch if args.epoch is None else args.epoch
    final = output_dir(cfg, name, cfg.dataset.test_image_set)
    logger = create_logger(final, name, 'test')
    logger.info('testing %s-%04d.params on %s', prefix, epoch, cfg.dataset.test_image_set)
    return test_net(cfg, symbol_package, prefix, epoch, vis=args.vis,
                    ignore_cache=args.ignore_cache, thresh=args.thresh, logger=logger,
                    output_dir=final)


def train_test_main(symbol_package, argv=None):
    """Train, then test the configured epoch (``--epoch`` or TEST.test_epoch); in distributed
    training only the worker of rank 0 tests (the others return None)."""
    return run(lambda a: _train_test(symbol_package, a), argv)


def _train_test(symbol_package, argv):
    _, last_epoch, rank = _train(symbol_package, argv)
    if rank != 0:
        logging.getLogger('dcn').info('training finished; testing is left to the worker of '
                                      'rank 0')
        return None
    logging.getLogger('dcn').info('training finished, testing')
    if parse_train_args(argv).end_epoch is not None and '--epoch' not in argv:
        # the schedule was shortened on the command line: test what was trained
        argv += ['--epoch', str(last_epoch)]
    return _test(symbol_package, argv)
