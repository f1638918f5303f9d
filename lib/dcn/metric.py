"""Training metrics for end-to-end detection training.

Each metric names the training outputs and labels it reads (``rpn_cls_prob`` (N, 2, A*H, W),
``rpn_bbox_loss`` (N, 4A, H, W), ``cls_prob_reshape`` (N, R, C), ``bbox_loss_reshape``,
``rcnn_label``; labels: the RPN ``label`` (N, A*H*W), ``bbox_target``, ``bbox_weight``), from
the task's name table (:data:`dcn.modeling.names.DETECTION`); a module hands it those arrays
by name (``update_dict``), in whatever order the symbol lists its outputs. ``update(labels,
preds)`` with lists takes them in the table's order. Labels equal to -1 (ignored anchors,
RoIs dropped by OHEM) are left out of every average.
"""
import mxnet as mx
import numpy as np

from dcn.modeling.names import DETECTION, output_name

__all__ = ['PRED_NAMES', 'LABEL_NAMES', 'RPNAccMetric', 'RPNLogLossMetric', 'RPNL1LossMetric',
           'RCNNAccMetric', 'RCNNLogLossMetric', 'RCNNL1LossMetric', 'get_train_metrics']

PRED_NAMES = list(DETECTION.train_outputs)
LABEL_NAMES = list(DETECTION.train_labels)
_EPS = 1e-14


def _np(x):
    return x.asnumpy() if hasattr(x, 'asnumpy') else np.asarray(x)


class _Metric(mx.metric.EvalMetric):
    """A metric reading the outputs ``preds`` and labels ``labels`` (names of the table)."""

    preds = ()
    labels = ()

    def __init__(self, name, names=DETECTION):
        self.table = names
        super(_Metric, self).__init__(
            name, output_names=[output_name(n) for n in self.preds],
            label_names=list(self.labels))

    def update_dict(self, label, pred):
        """By name: ``pred`` maps ``<output>_output`` names, ``label`` label names."""
        for n in self.output_names:
            if n not in pred:
                raise ValueError('metric %s needs the training output %s; the symbol has %s'
                                 % (self.name, n, ', '.join(pred)))
        for n in self.label_names:
            if n not in label:
                raise ValueError('metric %s needs the label %s; the loader provides %s'
                                 % (self.name, n, ', '.join(label)))
        self._compute(dict(zip(self.labels, (label[n] for n in self.label_names))),
                      dict(zip(self.preds, (pred[n] for n in self.output_names))))

    def update(self, labels, preds):
        """Lists in the table's order (``train_labels``, ``train_outputs``)."""
        outs = self.table.train_outputs
        if len(preds) < len(outs):
            raise ValueError('metric %s needs the %d training outputs %s, got %d arrays'
                             % (self.name, len(outs), ', '.join(outs), len(preds)))
        self._compute(dict(zip(self.table.train_labels, labels)), dict(zip(outs, preds)))

    def _compute(self, labels, preds):
        raise NotImplementedError

    def _add(self, value, count):
        self.sum_metric += float(value)
        self.num_inst += int(count)
        if hasattr(self, 'global_sum_metric'):
            self.global_sum_metric += float(value)
            self.global_num_inst += int(count)


def _rpn_flat(preds, labels):
    """RPN probabilities as (M, 2) rows aligned with the flattened labels (M,)."""
    pred = _np(preds['rpn_cls_prob'])
    label = _np(labels['label'])
    n = pred.shape[0]
    prob = pred.reshape((n, 2, -1)).transpose((0, 2, 1)).reshape((-1, 2))
    label = label.reshape((-1,))
    if prob.shape[0] != label.shape[0]:
        raise ValueError('rpn_cls_prob has %d anchors but label has %d'
                         % (prob.shape[0], label.shape[0]))
    return prob, label


class RPNAccMetric(_Metric):
    """Accuracy of the RPN foreground/background classification over sampled anchors."""

    preds = ('rpn_cls_prob',)
    labels = ('label',)

    def __init__(self, names=DETECTION):
        super(RPNAccMetric, self).__init__('RPNAcc', names)

    def _compute(self, labels, preds):
        prob, label = _rpn_flat(preds, labels)
        keep = label != -1
        pred_label = prob.argmax(axis=1)
        self._add(np.sum(pred_label[keep] == label[keep]), np.sum(keep))


class RPNLogLossMetric(_Metric):
    """Mean negative log probability of the true label over sampled anchors."""

    preds = ('rpn_cls_prob',)
    labels = ('label',)

    def __init__(self, names=DETECTION):
        super(RPNLogLossMetric, self).__init__('RPNLogLoss', names)

    def _compute(self, labels, preds):
        prob, label = _rpn_flat(preds, labels)
        keep = np.where(label != -1)[0]
        p = prob[keep, label[keep].astype(np.int64)]
        self._add(np.sum(-np.log(p + _EPS)), len(keep))


class RPNL1LossMetric(_Metric):
    """Sum of the RPN smooth-L1 loss per sampled anchor (label != -1), as the original
    (so the figure compares with its training logs)."""

    preds = ('rpn_bbox_loss',)
    labels = ('label',)

    def __init__(self, names=DETECTION):
        super(RPNL1LossMetric, self).__init__('RPNL1Loss', names)

    def _compute(self, labels, preds):
        bbox_loss = _np(preds['rpn_bbox_loss'])
        label = _np(labels['label'])
        self._add(np.sum(bbox_loss), np.sum(label != -1))


def _rcnn_flat(preds):
    pred = _np(preds['cls_prob_reshape'])
    label = _np(preds['rcnn_label'])
    prob = pred.reshape((-1, pred.shape[-1]))
    label = label.reshape((-1,))
    if prob.shape[0] != label.shape[0]:
        raise ValueError('cls_prob has %d RoIs but rcnn_label has %d'
                         % (prob.shape[0], label.shape[0]))
    return prob, label


class RCNNAccMetric(_Metric):
    """Accuracy of the R-CNN classification (RoIs labelled -1 by OHEM excluded)."""

    preds = ('cls_prob_reshape', 'rcnn_label')
    labels = ()

    def __init__(self, cfg=None, names=DETECTION):
        super(RCNNAccMetric, self).__init__('RCNNAcc', names)

    def _compute(self, labels, preds):
        prob, label = _rcnn_flat(preds)
        keep = label != -1
        self._add(np.sum(prob.argmax(axis=1)[keep] == label[keep]), np.sum(keep))


class RCNNLogLossMetric(_Metric):
    """Mean negative log probability of the R-CNN label."""

    preds = ('cls_prob_reshape', 'rcnn_label')
    labels = ()

    def __init__(self, cfg=None, names=DETECTION):
        super(RCNNLogLossMetric, self).__init__('RCNNLogLoss', names)

    def _compute(self, labels, preds):
        prob, label = _rcnn_flat(preds)
        keep = np.where(label != -1)[0]
        p = prob[keep, label[keep].astype(np.int64)]
        self._add(np.sum(-np.log(p + _EPS)), len(keep))


class RCNNL1LossMetric(_Metric):
    """Sum of the R-CNN smooth-L1 loss per RoI taking part in the loss."""

    preds = ('bbox_loss_reshape', 'rcnn_label')
    labels = ()

    def __init__(self, cfg=None, names=DETECTION):
        super(RCNNL1LossMetric, self).__init__('RCNNL1Loss', names)

    def _compute(self, labels, preds):
        bbox_loss = _np(preds['bbox_loss_reshape'])
        label = _np(preds['rcnn_label']).reshape((-1,))
        self._add(np.sum(bbox_loss), np.sum(label != -1))


def get_train_metrics(cfg=None, names=None):
    """CompositeEvalMetric with the training metrics (outputs looked up in ``names``,
    default :data:`DETECTION`) of the outputs the graph of ``names`` has: all six end to
    end, the three RPN ones for the RPN alone, the three R-CNN ones for the RoI head."""
    names = names or DETECTION
    composite = mx.metric.CompositeEvalMetric()
    for m in (RPNAccMetric(names), RPNLogLossMetric(names), RPNL1LossMetric(names),
              RCNNAccMetric(cfg, names), RCNNLogLossMetric(cfg, names),
              RCNNL1LossMetric(cfg, names)):
        if all(p in names.train_outputs for p in m.preds):
            composite.add(m)
    return composite
