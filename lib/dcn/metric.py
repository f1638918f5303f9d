"""Training metrics for end-to-end detection training.

Predictions are the training symbol outputs in the order fixed by the design:
``rpn_cls_prob`` (N, 2, A*H, W), ``rpn_bbox_loss`` (N, 4A, H, W), ``cls_prob``
(rcnn, (..., C)), ``bbox_loss`` (rcnn), ``rcnn_label``; labels are the RPN
``label`` (N, A*H*W), ``bbox_target`` and ``bbox_weight``.  Labels equal to -1
(ignored anchors, RoIs dropped by OHEM) are left out of every average.
"""
import mxnet as mx
import numpy as np

__all__ = ['PRED_NAMES', 'LABEL_NAMES', 'RPNAccMetric', 'RPNLogLossMetric', 'RPNL1LossMetric',
           'RCNNAccMetric', 'RCNNLogLossMetric', 'RCNNL1LossMetric', 'get_train_metrics']

PRED_NAMES = ['rpn_cls_prob', 'rpn_bbox_loss', 'cls_prob', 'bbox_loss', 'rcnn_label']
LABEL_NAMES = ['label', 'bbox_target', 'bbox_weight']
_EPS = 1e-14


def _np(x):
    return x.asnumpy() if hasattr(x, 'asnumpy') else np.asarray(x)


def _pred(preds, name):
    idx = PRED_NAMES.index(name)
    if len(preds) <= idx:
        raise ValueError('metric needs training output %d (%s), the symbol has only %d outputs'
                         % (idx, name, len(preds)))
    return _np(preds[idx])


def _label(labels, name):
    return _np(labels[LABEL_NAMES.index(name)])


class _Metric(mx.metric.EvalMetric):
    def __init__(self, name):
        # outputs are matched by position (module output names carry an '_output' suffix)
        super(_Metric, self).__init__(name)

    def _add(self, value, count):
        self.sum_metric += float(value)
        self.num_inst += int(count)
        if hasattr(self, 'global_sum_metric'):
            self.global_sum_metric += float(value)
            self.global_num_inst += int(count)


def _rpn_flat(preds, labels):
    """RPN probabilities as (M, 2) rows aligned with the flattened labels (M,)."""
    pred = _pred(preds, 'rpn_cls_prob')
    label = _label(labels, 'label')
    n = pred.shape[0]
    prob = pred.reshape((n, 2, -1)).transpose((0, 2, 1)).reshape((-1, 2))
    label = label.reshape((-1,))
    if prob.shape[0] != label.shape[0]:
        raise ValueError('rpn_cls_prob has %d anchors but label has %d'
                         % (prob.shape[0], label.shape[0]))
    return prob, label


class RPNAccMetric(_Metric):
    """Accuracy of the RPN foreground/background classification over sampled anchors."""

    def __init__(self):
        super(RPNAccMetric, self).__init__('RPNAcc')

    def update(self, labels, preds):
        prob, label = _rpn_flat(preds, labels)
        keep = label != -1
        pred_label = prob.argmax(axis=1)
        self._add(np.sum(pred_label[keep] == label[keep]), np.sum(keep))


class RPNLogLossMetric(_Metric):
    """Mean negative log probability of the true label over sampled anchors."""

    def __init__(self):
        super(RPNLogLossMetric, self).__init__('RPNLogLoss')

    def update(self, labels, preds):
        prob, label = _rpn_flat(preds, labels)
        keep = np.where(label != -1)[0]
        p = prob[keep, label[keep].astype(np.int64)]
        self._add(np.sum(-np.log(p + _EPS)), len(keep))


class RPNL1LossMetric(_Metric):
    """Sum of the RPN smooth-L1 loss per sampled anchor (label != -1), as the original
    (so the figure compares with its training logs)."""

    def __init__(self):
        super(RPNL1LossMetric, self).__init__('RPNL1Loss')

    def update(self, labels, preds):
        bbox_loss = _pred(preds, 'rpn_bbox_loss')
        label = _label(labels, 'label')
        self._add(np.sum(bbox_loss), np.sum(label != -1))


def _rcnn_flat(preds):
    pred = _pred(preds, 'cls_prob')
    label = _pred(preds, 'rcnn_label')
    prob = pred.reshape((-1, pred.shape[-1]))
    label = label.reshape((-1,))
    if prob.shape[0] != label.shape[0]:
        raise ValueError('cls_prob has %d RoIs but rcnn_label has %d'
                         % (prob.shape[0], label.shape[0]))
    return prob, label


class RCNNAccMetric(_Metric):
    """Accuracy of the R-CNN classification (RoIs labelled -1 by OHEM excluded)."""

    def __init__(self, cfg=None):
        super(RCNNAccMetric, self).__init__('RCNNAcc')

    def update(self, labels, preds):
        prob, label = _rcnn_flat(preds)
        keep = label != -1
        self._add(np.sum(prob.argmax(axis=1)[keep] == label[keep]), np.sum(keep))


class RCNNLogLossMetric(_Metric):
    """Mean negative log probability of the R-CNN label."""

    def __init__(self, cfg=None):
        super(RCNNLogLossMetric, self).__init__('RCNNLogLoss')

    def update(self, labels, preds):
        prob, label = _rcnn_flat(preds)
        keep = np.where(label != -1)[0]
        p = prob[keep, label[keep].astype(np.int64)]
        self._add(np.sum(-np.log(p + _EPS)), len(keep))


class RCNNL1LossMetric(_Metric):
    """Sum of the R-CNN smooth-L1 loss per RoI taking part in the loss."""

    def __init__(self, cfg=None):
        super(RCNNL1LossMetric, self).__init__('RCNNL1Loss')

    def update(self, labels, preds):
        bbox_loss = _pred(preds, 'bbox_loss')
        label = _pred(preds, 'rcnn_label').reshape((-1,))
        self._add(np.sum(bbox_loss), np.sum(label != -1))


def get_train_metrics(cfg=None):
    """CompositeEvalMetric with the six training metrics."""
    composite = mx.metric.CompositeEvalMetric()
    for m in (RPNAccMetric(), RPNLogLossMetric(), RPNL1LossMetric(),
              RCNNAccMetric(cfg), RCNNLogLossMetric(cfg), RCNNL1LossMetric(cfg)):
        composite.add(m)
    return composite
