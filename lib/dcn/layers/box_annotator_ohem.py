"""CustomOp ``BoxAnnotatorOHEM``: online hard example mining over the sampled RoIs.

Inputs: ``cls_score`` (R, C) raw class scores, ``bbox_pred`` (R, 4K),
``labels`` (R,), ``bbox_targets`` (R, 4K), ``bbox_weights`` (R, 4K).
Outputs: ``labels_ohem`` (R,) and ``bbox_weights_ohem`` (R, 4K).

The loss of a RoI is the softmax log loss of its label plus the smooth-L1
(sigma 1) of its weighted regression error.  The RoIs are split into
``batch_images`` equal consecutive groups (one per image); within each group the
``roi_per_img`` RoIs of highest loss keep their label and weights, the others
get label -1 (ignored by the softmax) and zero regression weights.  RoIs whose
label is already -1 never count as hard examples.
"""
import mxnet as mx
import numpy as np

from dcn.layers._common import check_error, zero_grads

__all__ = ['ohem_numpy', 'BoxAnnotatorOHEMOperator', 'BoxAnnotatorOHEMProp']


def _smooth_l1(x):
    ax = np.abs(x)
    return np.where(ax < 1.0, 0.5 * x * x, ax - 0.5)


def per_roi_loss(cls_score, bbox_pred, labels, bbox_targets, bbox_weights):
    scores = cls_score.astype(np.float64)
    scores = scores - scores.max(axis=1, keepdims=True)
    log_prob = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    safe_labels = np.clip(labels.astype(np.int64), 0, cls_score.shape[1] - 1)
    loss_cls = -log_prob[np.arange(len(labels)), safe_labels]
    loss_bbox = (bbox_weights * _smooth_l1(bbox_pred - bbox_targets)).sum(axis=1)
    loss = loss_cls + loss_bbox
    loss[labels < 0] = -np.inf
    return loss


def ohem_numpy(cls_score, bbox_pred, labels, bbox_targets, bbox_weights, roi_per_img,
               batch_images=1):
    labels = labels.reshape(-1)
    num_rois = labels.shape[0]
    if num_rois % batch_images != 0:
        raise ValueError('BoxAnnotatorOHEM: %d RoIs cannot be split into %d images'
                         % (num_rois, batch_images))
    loss = per_roi_loss(cls_score, bbox_pred, labels, bbox_targets, bbox_weights)
    labels_ohem = labels.astype(np.float32).copy()
    weights_ohem = bbox_weights.astype(np.float32).copy()
    per_image = num_rois // batch_images
    for b in range(batch_images):
        start = b * per_image
        order = np.argsort(-loss[start:start + per_image], kind='mergesort')
        drop = order[roi_per_img:] + start
        labels_ohem[drop] = -1
        weights_ohem[drop] = 0
    return labels_ohem, weights_ohem


class BoxAnnotatorOHEMOperator(mx.operator.CustomOp):
    def __init__(self, num_classes, num_reg_classes, roi_per_img, batch_images):
        super(BoxAnnotatorOHEMOperator, self).__init__()
        self._num_classes = num_classes
        self._num_reg_classes = num_reg_classes
        self._roi_per_img = roi_per_img
        self._batch_images = batch_images

    def forward(self, is_train, req, in_data, out_data, aux):
        cls_score = in_data[0].asnumpy()
        cls_score = cls_score.reshape((-1, cls_score.shape[-1]))
        bbox_pred = in_data[1].asnumpy()
        bbox_pred = bbox_pred.reshape((-1, bbox_pred.shape[-1]))
        labels = in_data[2].asnumpy()
        bbox_targets = in_data[3].asnumpy().reshape(bbox_pred.shape)
        bbox_weights = in_data[4].asnumpy().reshape(bbox_pred.shape)
        labels_ohem, weights_ohem = ohem_numpy(cls_score, bbox_pred, labels, bbox_targets,
                                               bbox_weights, self._roi_per_img, self._batch_images)
        self.assign(out_data[0], req[0], labels_ohem.reshape(out_data[0].shape))
        self.assign(out_data[1], req[1], weights_ohem.reshape(out_data[1].shape))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        zero_grads(self, req, in_grad)


@mx.operator.register('BoxAnnotatorOHEM')
class BoxAnnotatorOHEMProp(mx.operator.CustomOpProp):
    def __init__(self, num_classes, num_reg_classes, roi_per_img, batch_images='1'):
        super(BoxAnnotatorOHEMProp, self).__init__(need_top_grad=False)
        # argument errors are raised from infer_shape (see ProposalProp)
        self._error = None
        try:
            self._num_classes = int(num_classes)
            self._num_reg_classes = int(num_reg_classes)
            self._roi_per_img = int(roi_per_img)
            self._batch_images = int(batch_images)
            if self._roi_per_img <= 0 or self._batch_images <= 0:
                raise ValueError('BoxAnnotatorOHEM: roi_per_img and batch_images must be '
                                 'positive, got %d and %d' % (self._roi_per_img,
                                                              self._batch_images))
        except (ValueError, TypeError) as exc:
            self._error = str(exc)

    def list_arguments(self):
        return ['cls_score', 'bbox_pred', 'labels', 'bbox_targets', 'bbox_weights']

    def list_outputs(self):
        return ['labels_ohem', 'bbox_weights_ohem']

    def infer_shape(self, in_shape):
        check_error(self)
        labels_shape, weights_shape = in_shape[2], in_shape[4]
        return in_shape, [labels_shape, weights_shape], []

    def create_operator(self, ctx, shapes, dtypes):
        check_error(self)
        return BoxAnnotatorOHEMOperator(self._num_classes, self._num_reg_classes,
                                        self._roi_per_img, self._batch_images)

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return []
