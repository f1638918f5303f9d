"""Segmentation training batches (the original's ``deeplab/core/loader.py:TrainDataLoader``)
and training metrics of the segmentation outputs.

:class:`SegTrainLoader` gives ``data`` (N, 3, H, W) and ``label`` (N, 1, H, W) with one image
per device (:func:`dcn.seg_data.get_segmentation_train_batch`: resized, randomly cropped
with ``TRAIN.ENABLE_CROP``); when the images of one batch differ in size (no crop, several
devices) they are padded at the bottom/right, the data with 0 and the label with 255
(ignored). The order and the random draws of an epoch are a function of (seed, epoch)
(``set_epoch`` of :class:`dcn.loader.TrainLoaderBase`, shared with the detection loaders).

Metrics (looked up by name in the segmentation name table: output ``softmax``, label
``label``): pixel accuracy and the mean log loss over the pixels not labelled 255.
"""
import mxnet as mx
import numpy as np

from .dataset.segmentation import IGNORE_LABEL
from .loader import TrainLoaderBase
from .metric import _Metric, _np
from .seg_data import get_segmentation_train_batch

__all__ = ['SegTrainLoader', 'PixelAccMetric', 'PixelLogLossMetric', 'get_seg_train_metrics']

_EPS = 1e-14


class SegTrainLoader(TrainLoaderBase):
    """Training batches ``data`` / ``label`` of a segdb (see module docstring).

    :param batch_size: images per iteration over all devices (``BATCH_IMAGES * len(ctx)``)
    """
    data_names = ['data']
    label_names = ['label']

    db_attr = 'segdb'
    seed_salt = 0x5e9

    def __init__(self, segdb, cfg, batch_size=1, shuffle=False, ctx=None, seed=None,
                 prefetch=None):
        self._init_order(list(segdb), cfg, batch_size, ctx, bool(shuffle), False, seed, prefetch,
                         'SegTrainLoader')
        self.reset()
        first = self._peek()
        self._provide_data = [(k, first[k].shape) for k in self.data_names]
        self._provide_label = [(k, first[k].shape) for k in self.label_names]

    def _epoch_batches(self):
        n = len(self.segdb)
        order = self._order_rng.permutation(n) if self.shuffle else np.arange(n)
        stop = (n // self.batch_size) * self.batch_size
        return [order[i:i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def _make_batch(self, indices):
        datas, labels = [], []
        for i in indices:
            d, lab = get_segmentation_train_batch([self.segdb[int(i)]], self.cfg, self._rng)
            datas.append(d['data'])
            labels.append(lab['label'])
        h = max(d.shape[2] for d in datas)
        w = max(d.shape[3] for d in datas)
        data = np.zeros((len(datas), 3, h, w), np.float32)
        label = np.full((len(datas), 1, h, w), IGNORE_LABEL, np.float32)
        for k, (d, lab) in enumerate(zip(datas, labels)):
            data[k, :, :d.shape[2], :d.shape[3]] = d[0]
            label[k, :, :lab.shape[2], :lab.shape[3]] = lab[0]
        return {'data': data, 'label': label}

    def _to_databatch(self, batch):
        self._provide_data = [(k, batch[k].shape) for k in self.data_names]
        self._provide_label = [(k, batch[k].shape) for k in self.label_names]
        return mx.io.DataBatch(data=[mx.nd.array(batch[k]) for k in self.data_names],
                               label=[mx.nd.array(batch[k]) for k in self.label_names],
                               provide_data=self.provide_data, provide_label=self.provide_label)


def _valid_pixels(labels, preds):
    prob = _np(preds['softmax'])                  # (N, C, H, W)
    label = _np(labels['label']).astype(np.int64)  # (N, 1, H, W)
    label = label.reshape((label.shape[0],) + prob.shape[2:])
    keep = label != IGNORE_LABEL
    return prob, label, keep


class PixelAccMetric(_Metric):
    """Fraction of the pixels not labelled 255 whose arg-max class is the label."""

    preds = ('softmax',)
    labels = ('label',)

    def __init__(self, names):
        super(PixelAccMetric, self).__init__('PixelAcc', names)

    def _compute(self, labels, preds):
        prob, label, keep = _valid_pixels(labels, preds)
        pred = prob.argmax(axis=1)
        self._add(np.sum((pred == label) & keep), np.sum(keep))


class PixelLogLossMetric(_Metric):
    """Mean ``-log p(label)`` over the pixels not labelled 255 (the training loss)."""

    preds = ('softmax',)
    labels = ('label',)

    def __init__(self, names):
        super(PixelLogLossMetric, self).__init__('PixelLogLoss', names)

    def _compute(self, labels, preds):
        prob, label, keep = _valid_pixels(labels, preds)
        safe = np.where(keep, label, 0)
        p = np.take_along_axis(prob, safe[:, None], axis=1)[:, 0]
        self._add(np.sum(-np.log(p[keep] + _EPS)), np.sum(keep))


def get_seg_train_metrics(names):
    """CompositeEvalMetric of the pixel accuracy and log loss (outputs named in ``names``)."""
    composite = mx.metric.CompositeEvalMetric()
    for m in (PixelAccMetric(names), PixelLogLossMetric(names)):
        composite.add(m)
    return composite
