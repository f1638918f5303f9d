"""Testing a semantic-segmentation checkpoint, as the original's
``deeplab/function/test_deeplab.py`` + ``core/tester.py:pred_eval``.

Every image of ``cfg.dataset.test_image_set`` is resized as for training (first scale, no
crop, no flip) and run whole through the shared :class:`dcn.engine.predictor.Predictor`;
the arg-max over the classes of ``softmax_output`` (at the network input's size) is the
predicted map. The maps are written as palette PNGs ``<result dir>/<image set>/segmentation/
<index>.png`` and scored by the dataset (:class:`dcn.evaluation.SemSegEvaluator`:
confusion matrix, per-class IoU, mIoU as the original).
"""
import logging
import time

import mxnet as mx
import numpy as np

from dcn.checkpoint import check_param_shapes, load_param
from dcn.engine.predictor import Predictor
from dcn.modeling.names import output_name

__all__ = ['test_segmentation', 'predict_segmentation', 'seg_predictor']

_log = logging.getLogger('dcn')


def seg_predictor(sym, arg_params, aux_params, ctx, data_shape=None, source=None):
    """A :class:`Predictor` of the segmentation test symbol (inputs ``data`` and the unused
    ``softmax_label``); the parameters are checked against ``data_shape`` when given."""
    if data_shape is not None:
        n, _, h, w = data_shape
        check_param_shapes(sym, arg_params, aux_params,
                           {'data': tuple(data_shape), 'softmax_label': (n, h * w)},
                           source=source)
    # the unused label is fed (zeros) so that its shape follows each image's
    return Predictor(sym, ['data', 'softmax_label'], [], context=ctx, arg_params=arg_params,
                     aux_params=aux_params)


def predict_segmentation(predictor, data, names=None):
    """(class map (H, W) int64, probabilities (C, H, W)) of one prepared image ``data``
    (1, 3, H, W)."""
    out_name = output_name(names.test_outputs[0]) if names is not None else 'softmax_output'
    data = np.asarray(data, np.float32)
    label = np.zeros((data.shape[0], data.shape[2] * data.shape[3]), np.float32)
    prob = predictor(data=data, softmax_label=label)[out_name][0]
    return prob.argmax(axis=0), prob


def test_segmentation(cfg, symbol_package, prefix, epoch, ctx=None, vis=False,
                      ignore_cache=True, thresh=None, logger=None, output_dir=None,
                      image_set=None):
    """Evaluate checkpoint ``prefix``-``epoch`` on ``cfg.dataset.test_image_set``; returns
    the evaluator's dict (``mIoU``, ``IoU`` per class, pixel accuracy). ``vis``,
    ``ignore_cache`` and ``thresh`` (detection options) change nothing here."""
    from dcn.config import get_contexts
    from dcn.dataset.segmentation import segmentation_imdb
    from dcn.seg_data import get_segmentation_image
    from dcn.train import get_symbol_instance

    logger = logger or _log
    image_set = image_set or cfg.dataset.test_image_set
    ctx = list(ctx) if ctx else get_contexts(cfg)[:1]
    sym_instance = get_symbol_instance(symbol_package, cfg)
    sym = sym_instance.get_symbol(cfg, is_train=False)
    imdb = segmentation_imdb(cfg, image_set, output_dir)
    segdb = imdb.gt_segdb()
    arg_params, aux_params = load_param(prefix, epoch, process=True)
    predictor = None
    preds = []
    tic = time.time()
    for i, rec in enumerate(segdb):
        data, _, _ = get_segmentation_image(rec, cfg, None, scale_index=0)
        if predictor is None:
            predictor = seg_predictor(sym, arg_params, aux_params, ctx, data.shape,
                                      source='%s-%04d.params' % (prefix, epoch))
        pred, _ = predict_segmentation(predictor, data, getattr(sym_instance, 'names', None))
        preds.append(pred.astype(np.uint8))
        if (i + 1) % 100 == 0:
            logger.info('segmented %d / %d images', i + 1, len(segdb))
    logger.info('segmented %d images in %.1fs', len(segdb), time.time() - tic)
    res = imdb.evaluate_segmentations(preds, write=True)
    logger.info('%s mIoU %.4f', imdb.name, res['mIoU'])
    return res
