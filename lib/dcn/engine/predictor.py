"""One predictor and one detection post-processing, used by the tester, the demos and the
end-to-end benchmark (``benchmarks/bench_e2e.py``).

:class:`Predictor` binds a test symbol (for the largest input, or lazily on the first one)
and reshapes for other inputs; on CPU contexts it first applies the bind-time rewrites of
:mod:`dcn.engine.graph_rewrite`, so that the graph a config gives is the same on every
host. :func:`decode_detections` turns the test outputs (looked up by the names of the name
table) into per-image class scores and boxes; :func:`postprocess_detections` applies the
score threshold, class-wise NMS (or soft-NMS) and the per-image cap.
"""
import mxnet as mx
import numpy as np

from dcn.bbox import bbox_pred, clip_boxes
from dcn.modeling.names import DETECTION, output_name

from .graph_rewrite import fuse_offset_pooling, uses_our_ops

__all__ = ['Predictor', 'decode_detections', 'postprocess_detections', 'class_boxes',
           'nms_for_config', 'prepare_for_context']


def prepare_for_context(symbol, context):
    """``symbol`` as bound on ``context`` (list of contexts): on the CPU the offset
    branches of our deformable PS RoI pooling are fused (same outputs and parameters)."""
    contexts = context if isinstance(context, (list, tuple)) else [context]
    if all(c.device_type == 'cpu' for c in contexts) and uses_our_ops(symbol):
        symbol, _ = fuse_offset_pooling(symbol)
    return symbol


class Predictor(object):
    """Forward-only wrapper around ``mx.mod.Module``.

    :param max_data_shapes: list of (name, shape) used for the first bind (largest input);
        when omitted, the module is bound on the first input
    :param provide_data: unused beyond validation; kept for the original signature
    """

    def __init__(self, symbol, data_names, label_names=None, context=None, max_data_shapes=None,
                 provide_data=None, provide_label=None, arg_params=None, aux_params=None):
        context = context or [mx.cpu()]
        if not isinstance(context, (list, tuple)):
            context = [context]
        self.context = list(context)
        self.symbol = prepare_for_context(symbol, self.context)
        self.output_names = self.symbol.list_outputs()
        self.data_names = list(data_names)
        self.label_names = list(label_names or [])
        self.arg_params, self.aux_params = arg_params, aux_params
        self._mod = None
        shapes = max_data_shapes or provide_data
        if shapes:
            self._bind([(d.name, d.shape) if hasattr(d, 'name') else tuple(d) for d in shapes])

    def _bind(self, shapes):
        self._mod = mx.mod.Module(self.symbol, data_names=self.data_names,
                                  label_names=self.label_names or None, context=self.context)
        self._mod.bind(shapes, None, for_training=False)
        self._mod.init_params(arg_params=self.arg_params, aux_params=self.aux_params,
                              allow_missing=False)

    def predict(self, data_batch):
        """Forward ``data_batch``; returns a dict output name -> numpy array."""
        if self._mod is None:
            self._bind([(n, tuple(d.shape)) for n, d in zip(self.data_names, data_batch.data)])
        self._mod.forward(data_batch, is_train=False)
        outputs = self._mod.get_outputs(merge_multi_context=True)
        return {name: out.asnumpy() for name, out in zip(self.output_names, outputs)}

    def __call__(self, **inputs):
        """Forward numpy inputs given by name; returns a dict output name -> numpy array."""
        shapes = [(n, tuple(inputs[n].shape)) for n in self.data_names]
        batch = mx.io.DataBatch(data=[mx.nd.array(inputs[n]) for n in self.data_names],
                                provide_data=[mx.io.DataDesc(n, s) for n, s in shapes])
        return self.predict(batch)


def decode_detections(output, im_info, scales, names=DETECTION):
    """Per image (R, C) class probabilities and (R, 4 * regression classes) boxes in
    original image coordinates (clipped to the network input, divided by the scale), from
    the test outputs ``rois``, ``cls_prob_reshape``, ``bbox_pred_reshape`` of ``names``."""
    rois_name, prob_name, delta_name = (output_name(n) for n in names.test_outputs)
    for name in (rois_name, prob_name, delta_name):
        if name not in output:
            raise ValueError('test symbol has no output %s (outputs: %s)'
                             % (name, ', '.join(sorted(output))))
    rois, cls_prob, deltas = output[rois_name], output[prob_name], output[delta_name]
    num_images = cls_prob.shape[0]
    per_image = rois.shape[0] // num_images
    scores_list, boxes_list = [], []
    for i in range(num_images):
        image_rois = rois[i * per_image:(i + 1) * per_image]
        if np.any(image_rois[:, 0] != i):  # rois carry their batch index: use it when set
            image_rois = rois[rois[:, 0] == i]
        boxes = image_rois[:, 1:5]
        pred = bbox_pred(boxes, deltas[i][:boxes.shape[0]])
        pred = clip_boxes(pred, im_info[i, :2])
        pred = pred / float(scales[i])
        scores_list.append(cls_prob[i][:boxes.shape[0]])
        boxes_list.append(pred.astype(np.float32))
    return scores_list, boxes_list


def class_boxes(boxes, cls, class_agnostic):
    """Columns of class ``cls`` in (R, 4K) boxes (column block 1 when class-agnostic)."""
    if class_agnostic or boxes.shape[1] == 8:
        return boxes[:, 4:8] if boxes.shape[1] >= 8 else boxes[:, 0:4]
    return boxes[:, 4 * cls:4 * (cls + 1)]


def nms_for_config(cfg):
    """``f(dets) -> (keep, scores)`` for the final detections (TEST.NMS or soft-NMS)."""
    from dcn import nms as nms_mod
    test = cfg.TEST
    if test.get('USE_SOFTNMS', False):
        # the original FPN tester's: Gaussian, sigma SOFTNMS_THRESH, no score cut-off, at
        # most max_per_image boxes per class
        sigma = float(test.SOFTNMS_THRESH)
        max_dets = int(test.get('max_per_image', -1) or -1)

        def _original_soft(dets):
            return nms_mod.original_soft_nms(dets, sigma, max_dets)
        return _original_soft
    if test.get('SOFT_NMS', False):
        soft = nms_mod.soft_nms_wrapper(test.NMS, method=test.get('SOFT_NMS_METHOD', 'linear'),
                                        sigma=test.get('SOFT_NMS_SIGMA', 0.5))

        def _soft(dets):
            keep, scores = soft.rescore(dets)
            return np.asarray(keep, dtype=np.int64), np.asarray(scores, dtype=np.float32)
        return _soft
    hard = nms_mod.cpu_nms_wrapper(test.NMS)

    def _hard(dets):
        keep = np.asarray(hard(dets), dtype=np.int64)
        return keep, dets[keep, 4]
    return _hard


def limit_per_image(dets, max_per_image):
    """Keep, over all classes (index 0, the background, excluded), the detections scoring
    at least the ``max_per_image``-th best score (ties kept); in place, returns ``dets``."""
    if max_per_image <= 0:
        return dets
    scores = np.hstack([dets[j][:, -1] for j in range(1, len(dets))])
    if len(scores) > max_per_image:
        thresh = np.sort(scores)[-max_per_image]
        for j in range(1, len(dets)):
            dets[j] = dets[j][dets[j][:, -1] >= thresh]
    return dets


def postprocess_detections(scores, boxes, class_agnostic, nms, thresh, max_per_image,
                           inclusive=False, drop_empty=False, image_shape=None):
    """Detections of one image: list over classes of (k, 5) float32 arrays (x1, y1, x2, y2,
    score), index 0 (the background) empty.

    Per class: scores above ``thresh`` (at or above with ``inclusive``, then again after
    soft-NMS rescoring), boxes clipped to ``image_shape`` when given and empty boxes dropped
    with ``drop_empty`` (the demos); NMS; then the cap of ``max_per_image`` over all classes.
    """
    if image_shape is not None:
        boxes = clip_boxes(boxes, image_shape[:2])
    dets = [np.zeros((0, 5), dtype=np.float32)]
    for j in range(1, scores.shape[1]):
        inds = np.where(scores[:, j] >= thresh if inclusive else scores[:, j] > thresh)[0]
        cls_dets = np.hstack((class_boxes(boxes[inds], j, class_agnostic),
                              scores[inds, j][:, np.newaxis])).astype(np.float32)
        if drop_empty:
            cls_dets = cls_dets[(cls_dets[:, 2] >= cls_dets[:, 0]) &
                                (cls_dets[:, 3] >= cls_dets[:, 1])]
        keep, new_scores = nms(cls_dets)
        cls_dets = cls_dets[keep, :]
        cls_dets[:, 4] = new_scores
        if inclusive:
            cls_dets = cls_dets[cls_dets[:, 4] >= thresh]
        dets.append(cls_dets)
    return limit_per_image(dets, max_per_image)
