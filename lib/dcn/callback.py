"""Training callbacks: throughput/metric logging and epoch checkpoints."""
import logging
import time

from dcn.checkpoint import save_checkpoint, unnormalize_bbox_params

__all__ = ['Speedometer', 'do_checkpoint']


class Speedometer(object):
    """Log samples per second and the training metrics every ``frequent`` batches.

    Called with an ``mx.model.BatchEndParam``-like object (``epoch``, ``nbatch``,
    ``eval_metric``).  ``batch_size`` is the number of images per iteration.
    """

    def __init__(self, batch_size, frequent=50, logger=None):
        if int(frequent) <= 0:
            raise ValueError('Speedometer: frequent must be positive, got %r' % (frequent,))
        self.batch_size = int(batch_size)
        self.frequent = int(frequent)
        self.logger = logger or logging.getLogger(__name__)
        self.init = False
        self.tic = 0
        self.last_count = 0
        self.last_speed = None

    def __call__(self, param):
        count = param.nbatch
        if self.last_count > count:
            self.init = False
        self.last_count = count
        if self.init:
            if count % self.frequent == 0:
                elapsed = max(time.time() - self.tic, 1e-12)
                speed = self.frequent * self.batch_size / elapsed
                self.last_speed = speed
                msg = 'Epoch[%d] Batch [%d]\tSpeed: %.2f samples/sec' % (param.epoch, count, speed)
                if param.eval_metric is not None:
                    names, values = param.eval_metric.get()
                    if not isinstance(names, list):
                        names, values = [names], [values]
                    msg += '\tTrain-' + ',\t'.join('%s=%f' % nv for nv in zip(names, values))
                self.logger.info(msg)
                self.tic = time.time()
        else:
            self.init = True
            self.tic = time.time()


def do_checkpoint(prefix, means, stds, logger=None, bbox_layers=None):
    """Epoch-end callback ``f(epoch, symbol, arg_params, aux_params)``.

    Saves ``PREFIX-%04d.params`` for epoch ``epoch + 1`` (and ``PREFIX-symbol.json``)
    atomically, with the box-regression layers (``bbox_pred`` / ``rfcn_bbox``)
    un-normalised by ``stds`` / ``means`` (4 values, or 4 per regression class).
    The dictionaries passed in are not modified.
    """
    log = logger or logging.getLogger(__name__)

    def _callback(epoch, symbol, arg, aux):
        saved = unnormalize_bbox_params(arg, means, stds, bbox_layers)
        path = save_checkpoint(prefix, epoch + 1, symbol, saved, aux)
        log.info('Saved checkpoint to "%s"', path)
    return _callback
