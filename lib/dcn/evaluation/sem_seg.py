"""Semantic segmentation metrics, computed as the original DeepLab code does.

One confusion matrix ``cm[gt, pred]`` is accumulated over every pixel of the evaluated set
whose ground truth is not the ignore label (255). For each class,
``IoU = TP / max(1, GT + Pred - TP)`` with ``TP = cm[c, c]``, ``GT = cm[c, :].sum()`` and
``Pred = cm[:, c].sum()``; ``mIoU`` is the plain mean over *all* classes, so a class that
never occurs (neither in the ground truth nor in the predictions) counts as 0
(``cityscape.py`` / ``pascal_voc.py``: ``_py_evaluate_segmentation``).

Before counting, prediction and ground truth are brought to the same size with
nearest-neighbour resizing. The original's two datasets do it in opposite directions:

- ``'pred_to_gt'`` (Cityscapes): the prediction is resized to the ground truth's size;
- ``'gt_to_pred'`` (PASCAL VOC): the ground truth is resized to the prediction's size, so
  VOC is scored at the network's input resolution.

Unlike the original, labels outside ``[0, num_classes)`` (other than the ignore label) are an
error here rather than being counted in a neighbouring cell or dropped.
"""
import logging

import cv2
import numpy as np

from dcn.evaluation.detection import DatasetEvaluator

__all__ = ['SemSegEvaluator', 'confusion_matrix', 'iou_from_confusion',
           'evaluate_segmentation', 'RESIZE_MODES']

logger = logging.getLogger(__name__)

RESIZE_MODES = ('pred_to_gt', 'gt_to_pred')


def _as_label_map(a, what):
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 4 and a.shape[:2] == (1, 1):
        a = a[0, 0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError('%s must be a non-empty (H, W) label map (or (1, H, W)), got shape %s'
                         % (what, a.shape))
    if a.dtype.kind == 'f':
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError('%s holds non-integer values; expected class indices' % what)
    elif a.dtype.kind not in 'iub':
        raise ValueError('%s must hold integer class indices, got dtype %s' % (what, a.dtype))
    return a


def _resize_nearest(a, shape):
    """Nearest-neighbour resize of an integer label map to ``shape`` (H, W), as cv2."""
    if a.shape == tuple(shape):
        return a
    # cv2 resizes float32 exactly for every class index (the original resizes float32 maps)
    out = cv2.resize(a.astype(np.float32), (int(shape[1]), int(shape[0])),
                     interpolation=cv2.INTER_NEAREST)
    return out.astype(np.int64)


def confusion_matrix(gt, pred, num_classes, ignore_label=255):
    """(num_classes, num_classes) int64 counts ``cm[g, p]`` over the pixels with gt != ignore.

    ``gt`` and ``pred`` are integer label maps of the same shape.
    """
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError('num_classes must be >= 1, got %r' % (num_classes,))
    gt = np.asarray(gt).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    if gt.shape != pred.shape:
        raise ValueError('gt and pred must have the same number of pixels, got %d and %d'
                         % (gt.size, pred.size))
    keep = gt != ignore_label
    gt, pred = gt[keep], pred[keep]
    bad = (gt < 0) | (gt >= num_classes)
    if bad.any():
        raise ValueError('ground truth holds label %d, outside [0, %d) and not the ignore label '
                         '%r' % (int(gt[bad][0]), num_classes, ignore_label))
    bad = (pred < 0) | (pred >= num_classes)
    if bad.any():
        raise ValueError('prediction holds class %d, outside [0, %d)'
                         % (int(pred[bad][0]), num_classes))
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def iou_from_confusion(cm):
    """Per-class IoU ``TP / max(1, GT + Pred - TP)`` of a confusion matrix (float64 array)."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError('confusion matrix must be square, got shape %s' % (cm.shape,))
    tp = np.diag(cm)
    pos = cm.sum(axis=1)
    res = cm.sum(axis=0)
    return tp / np.maximum(1.0, pos + res - tp)


class SemSegEvaluator(DatasetEvaluator):
    """Accumulates one confusion matrix over a set of images.

    ``process(gt_labels, predictions)`` takes one image's ground truth (H, W) and predicted
    class map, or two equally long lists of them; ``evaluate()`` returns a dict with
    ``mIoU``, ``pixel_accuracy``, ``IoU/<class>`` for every class, ``IoU`` (the per-class
    array), the original's names ``meanIU`` / ``IU_array``, and ``confusion_matrix``.
    """

    def __init__(self, num_classes, class_names=None, ignore_label=255, resize='pred_to_gt'):
        self.num_classes = int(num_classes)
        if self.num_classes < 1:
            raise ValueError('num_classes must be >= 1, got %r' % (num_classes,))
        if class_names is None:
            class_names = ['class%d' % i for i in range(self.num_classes)]
        class_names = [str(c) for c in class_names]
        if len(class_names) != self.num_classes:
            raise ValueError('class_names lists %d names for %d classes'
                             % (len(class_names), self.num_classes))
        if resize not in RESIZE_MODES:
            raise ValueError('resize must be one of %s, got %r' % (list(RESIZE_MODES), resize))
        self.class_names = class_names
        self.ignore_label = ignore_label
        self.resize = resize
        self.reset()

    def reset(self):
        self.cm = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.num_images = 0

    def process(self, gt_labels, predictions):
        if isinstance(gt_labels, (list, tuple)) or isinstance(predictions, (list, tuple)):
            if not (isinstance(gt_labels, (list, tuple)) and
                    isinstance(predictions, (list, tuple))) or \
                    len(gt_labels) != len(predictions):
                raise ValueError('gt_labels and predictions must be two lists of the same length '
                                 '(or one label map each)')
            for g, p in zip(gt_labels, predictions):
                self.process(g, p)
            return
        gt = _as_label_map(gt_labels, 'gt_labels')
        pred = _as_label_map(predictions, 'predictions')
        if self.resize == 'pred_to_gt':
            pred = _resize_nearest(pred, gt.shape)
        else:
            gt = _resize_nearest(gt, pred.shape)
        self.cm += confusion_matrix(gt, pred, self.num_classes, self.ignore_label)
        self.num_images += 1

    def evaluate(self):
        iou = iou_from_confusion(self.cm)
        total = float(self.cm.sum())
        acc = float(np.trace(self.cm)) / max(1.0, total)
        res = {'mIoU': float(iou.mean()), 'pixel_accuracy': acc, 'IoU': iou,
               'meanIU': float(iou.mean()), 'IU_array': iou,
               'confusion_matrix': self.cm.copy(), 'num_images': self.num_images}
        for name, v in zip(self.class_names, iou):
            res['IoU/' + name] = float(v)
        return res

    def log_table(self, res=None, title='segmentation'):
        """Log per-class IoU, mIoU and pixel accuracy; returns the text."""
        res = self.evaluate() if res is None else res
        w = max([len(n) for n in self.class_names] + [5])
        lines = ['%s results (%d images)' % (title, res['num_images']),
                 '%-*s  %7s' % (w, 'class', 'IoU')]
        for n in self.class_names:
            lines.append('%-*s  %7.4f' % (w, n, res['IoU/' + n]))
        lines.append('%-*s  %7.4f' % (w, 'mIoU', res['mIoU']))
        lines.append('%-*s  %7.4f' % (w, 'pixel acc', res['pixel_accuracy']))
        text = '\n'.join(lines)
        logger.info(text)
        return text


def evaluate_segmentation(gt_labels, predictions, num_classes, resize='pred_to_gt',
                          ignore_label=255, class_names=None):
    """The original's whole-set computation: one confusion matrix over all images of the
    lists ``gt_labels`` / ``predictions`` (one (H, W) map per image), then IoU and mIoU.
    Returns the dict of :meth:`SemSegEvaluator.evaluate`."""
    ev = SemSegEvaluator(num_classes, class_names=class_names, ignore_label=ignore_label,
                         resize=resize)
    ev.process(list(gt_labels), list(predictions))
    return ev.evaluate()
