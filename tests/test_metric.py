"""Training metrics on hand-built arrays."""
import mxnet as mx
import numpy as np

from dcn.metric import (RCNNAccMetric, RCNNL1LossMetric, RCNNLogLossMetric, RPNAccMetric,
                        RPNL1LossMetric, RPNLogLossMetric, get_train_metrics)


def _batch():
    # 1 image, A=1 anchor, 2x2 map -> 4 anchors; rpn_cls_prob (1, 2, 2, 2)
    fg = np.array([[0.9, 0.2], [0.6, 0.4]])
    rpn_prob = np.stack([1 - fg, fg])[None]
    label = np.array([[1, 0, 0, -1]], np.float32)  # anchors in (h, w) order
    rpn_bbox_loss = np.full((1, 4, 2, 2), 0.5)
    bbox_weight = np.zeros((1, 4, 2, 2))
    bbox_weight[0, :, 0, 0] = 1
    cls_prob = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])[None]
    rcnn_label = np.array([[0, 2, -1]], np.float32)
    bbox_loss = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    preds = [mx.nd.array(a) for a in (rpn_prob, rpn_bbox_loss, cls_prob, bbox_loss, rcnn_label)]
    labels = [mx.nd.array(a) for a in (label, np.zeros((1, 4, 2, 2)), bbox_weight)]
    return labels, preds


def test_rpn_metrics():
    labels, preds = _batch()
    m = RPNAccMetric()
    m.update(labels, preds)
    # 0.9 -> fg (label 1), 0.2 -> bg (label 0), 0.6 -> fg (label 0); the last is ignored
    assert abs(m.get()[1] - 2 / 3.0) < 1e-9
    m.reset()
    labels[0] = mx.nd.array([[1, 0, 1, -1]])
    m.update(labels, preds)
    assert m.get()[1] == 1.0
    labels, preds = _batch()
    m = RPNLogLossMetric()
    m.update(labels, preds)
    expect = -(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3
    assert abs(m.get()[1] - expect) < 1e-6
    m = RPNL1LossMetric()
    m.update(labels, preds)
    # the original's normalisation: summed loss over the 3 sampled anchors (label != -1)
    assert abs(m.get()[1] - 0.5 * 16 / 3.0) < 1e-9


def test_rcnn_metrics_ignore_ohem_dropped():
    labels, preds = _batch()
    m = RCNNAccMetric()
    m.update(labels, preds)
    assert m.get()[1] == 0.5  # roi0 correct (0), roi1 predicted 1 but label 2, roi2 ignored
    m = RCNNLogLossMetric()
    m.update(labels, preds)
    assert abs(m.get()[1] - (-(np.log(0.7) + np.log(0.1)) / 2)) < 1e-6
    m = RCNNL1LossMetric()
    m.update(labels, preds)
    assert abs(m.get()[1] - 6.0 / 2) < 1e-9


def test_composite_metric_names():
    labels, preds = _batch()
    comp = get_train_metrics()
    comp.update(labels, preds)
    names = [n for n, _ in comp.get_name_value()]
    assert names == ['RPNAcc', 'RPNLogLoss', 'RPNL1Loss', 'RCNNAcc', 'RCNNLogLoss', 'RCNNL1Loss']
