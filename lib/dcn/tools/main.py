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
           'parse_test_args', 'train_rpn_main', 'test_rpn_main', 'rpn_train_test_main',
           'train_rcnn_main', 'rcnn_train_test_main', 'alternate_train_test_main']


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
    parser.add_argument('--proposal_path', default=None,
                        help='training from proposals: the directory whose rpn_data/ holds '
                        '<set>_rpn.pkl (default: the output directory of the training set)')
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
    parser.add_argument('--proposal_path', default=None,
                        help='TEST.HAS_RPN false: the directory whose rpn_data/ holds '
                        '<set>_rpn.pkl (default: the output directory of the test set)')
    args, _ = parser.parse_known_args(argv)
    return args


def load_family_config(symbol_package, path):
    """Import the family package (which may register its own config keys), then load
    ``path``."""
    import importlib
    from dcn.config import load_config
    importlib.import_module(symbol_package)
    return load_config(path)


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
    from dcn.train import create_logger, output_dir
    args = parse_test_args(argv)
    cfg = _load(args, symbol_package)
    name = cfg.config_name
    prefix = args.prefix or os.path.join(output_dir(cfg, name, cfg.dataset.image_set),
                                         cfg.TRAIN.model_prefix or 'e2e')
    epoch = cfg.TEST.test_epoch if args.epoch is None else args.epoch
    final = output_dir(cfg, name, cfg.dataset.test_image_set)
    logger = create_logger(final, name, 'test')
    logger.info('testing %s-%04d.params on %s', prefix, epoch, cfg.dataset.test_image_set)
    return test_net(cfg, symbol_package, prefix, epoch, vis=args.vis,
                    ignore_cache=args.ignore_cache, thresh=args.thresh, logger=logger,
                    output_dir=args.proposal_path or final)


# ---------------------------------------------------------------- proposal pipelines
def _stage_setup(symbol_package, argv, tag):
    from dcn.train import create_logger, output_dir, save_config
    args = parse_train_args(argv)
    cfg = _load(args, symbol_package)
    name = cfg.config_name
    final = output_dir(cfg, name, cfg.dataset.image_set)
    logger = create_logger(final, name, tag)
    logger.info('command line: %s', vars(args))
    save_config(cfg, os.path.join(final, name + '.yaml'))
    return args, cfg, name, final, logger


def _train_rpn(symbol_package, argv):
    from dcn.engine.proposals import train_rpn
    args, cfg, _, _, logger = _stage_setup(symbol_package, argv, 'train_rpn')
    return train_rpn(cfg, symbol_package, model_prefix=cfg.TRAIN.model_prefix or 'rpn',
                     logger=logger, frequent=args.frequent, end_epoch=args.end_epoch)


def _test_rpn(symbol_package, argv):
    """Proposals of dataset.test_image_set into its output directory, and their recall."""
    from dcn.engine.proposals import test_rpn
    from dcn.train import create_logger, output_dir
    args = parse_test_args(argv)
    cfg = _load(args, symbol_package)
    name = cfg.config_name
    prefix = args.prefix or os.path.join(output_dir(cfg, name, cfg.dataset.image_set),
                                         cfg.TRAIN.model_prefix or 'rpn')
    epoch = cfg.TEST.test_epoch if args.epoch is None else args.epoch
    final = args.proposal_path or output_dir(cfg, name, cfg.dataset.test_image_set)
    logger = create_logger(final, name, 'test_rpn')
    return test_rpn(cfg, symbol_package, prefix, epoch, result_path=final, logger=logger)[1]


def train_rpn_main(symbol_package, argv=None):
    """Train the RPN alone (TRAIN.* schedule); returns (prefix, last epoch)."""
    return run(lambda a: _train_rpn(symbol_package, a), argv)


def test_rpn_main(symbol_package, argv=None):
    """Dump the proposals of the test set (``<output>/<cfg>/<test set>/rpn_data/
    <set>_rpn.pkl``) and report their recall for 100 / 300 / 1000 proposals."""
    return run(lambda a: _test_rpn(symbol_package, a), argv)


def rpn_train_test_main(symbol_package, argv=None):
    """Train the RPN alone, then dump the test set's proposals and their recall."""
    def _both(a):
        _, last = _train_rpn(symbol_package, a)
        if '--epoch' not in a:
            a = a + ['--epoch', str(last)]
        return _test_rpn(symbol_package, a)
    return run(_both, argv)


def _train_rcnn(symbol_package, argv):
    from dcn.engine.proposals import train_rcnn
    args, cfg, _, final, logger = _stage_setup(symbol_package, argv, 'train_rcnn')
    return train_rcnn(cfg, symbol_package, args.proposal_path or final,
                      model_prefix=cfg.TRAIN.model_prefix or 'rcnn', logger=logger,
                      frequent=args.frequent, end_epoch=args.end_epoch)


def train_rcnn_main(symbol_package, argv=None):
    """Train the RoI head on the proposals of dataset.proposal (the original's
    ``train_rfcn`` / ``train_rcnn``); returns (prefix, last epoch)."""
    return run(lambda a: _train_rcnn(symbol_package, a), argv)


def rcnn_train_test_main(symbol_package, argv=None):
    """Train the RoI head from proposals, then test (TEST.HAS_RPN as configured)."""
    def _both(a):
        _, last = _train_rcnn(symbol_package, a)
        if parse_train_args(a).end_epoch is not None and '--epoch' not in a:
            a = a + ['--epoch', str(last)]
        return _test(symbol_package, a)
    return run(_both, argv)


def _alternate(symbol_package, argv):
    from dcn.engine.proposals import alternate_train
    args, cfg, _, final, logger = _stage_setup(symbol_package, argv, 'train_alternate')
    return alternate_train(cfg, symbol_package, final, logger=logger, frequent=args.frequent)


def alternate_train_test_main(symbol_package, argv=None):
    """Alternate (4-step) training, then the end-to-end test of the combined model."""
    def _both(a):
        prefix, epoch = _alternate(symbol_package, a)
        return _test(symbol_package, a + ['--prefix', prefix, '--epoch', str(epoch)])
    return run(_both, argv)


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
