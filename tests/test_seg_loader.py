"""Segmentation training loader and metrics: ignore label 255 left out, padding never
scored, epochs replayable from (seed, epoch)."""
import os

import mxnet as mx
import numpy as np
import pytest

from dcn.modeling.names import NameTable
from dcn.seg_loader import PixelAccMetric, PixelLogLossMetric, SegTrainLoader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = NameTable('seg', train_data=('data',), train_labels=('label',),
                  train_outputs=('softmax',), test_data=('data',), test_outputs=('softmax',))


def _probs():
    # 2 classes, 1 x 2 x 2 image; pixel (1, 1) is labelled 255
    p1 = np.array([[0.9, 0.2], [0.4, 0.5]])
    prob = np.stack([1 - p1, p1])[None]            # (1, 2, 2, 2)
    label = np.array([[[[1, 1], [0, 255]]]], np.float32)
    return prob, label


def test_pixel_metrics_leave_out_ignored_pixels():
    prob, label = _probs()
    acc, loss = PixelAccMetric(NAMES), PixelLogLossMetric(NAMES)
    for m in (acc, loss):
        m.update_dict({'label': mx.nd.array(label)}, {'softmax_output': mx.nd.array(prob)})
    # predictions 1, 0, 0 on the three scored pixels, labels 1, 1, 0
    assert acc.get()[1] == pytest.approx(2.0 / 3)
    want = -(np.log(0.9) + np.log(0.2) + np.log(0.6)) / 3
    assert loss.get()[1] == pytest.approx(want, rel=1e-6)


def test_pixel_metric_names_missing_output():
    m = PixelAccMetric(NAMES)
    with pytest.raises(ValueError, match='softmax_output'):
        m.update_dict({'label': mx.nd.zeros((1, 1, 2, 2))}, {'cls_prob_output': mx.nd.zeros(1)})


def _cfg():
    from dcn.tools.main import load_family_config
    return load_family_config('deeplab', os.path.join(
        ROOT, 'experiments', 'deeplab', 'cfgs', 'shapes_mini_deeplab.yaml'))


def test_loader_pads_with_ignore_label_and_replays_epochs():
    from dcn.dataset.segmentation import load_gt_segdb
    cfg = _cfg()
    _, segdb = load_gt_segdb(cfg, cfg.dataset.image_set)
    segdb = segdb[:4]
    loader = SegTrainLoader(segdb, cfg, batch_size=2, shuffle=True, ctx=[mx.cpu(), mx.cpu()],
                            seed=3)
    try:
        assert loader.iters_per_epoch == 2
        loader.set_epoch(0, 1)
        first = [(b.data[0].asnumpy(), b.label[0].asnumpy()) for b in loader]
        loader.set_epoch(0, 1)
        again = [(b.data[0].asnumpy(), b.label[0].asnumpy()) for b in loader]
        for (d1, l1), (d2, l2) in zip(first, again):
            np.testing.assert_array_equal(d1, d2)
            np.testing.assert_array_equal(l1, l2)
        for data, label in first:
            assert data.shape[0] == 2 and label.shape == (2, 1) + data.shape[2:]
            labels = set(np.unique(label).tolist())
            assert labels <= set(range(cfg.dataset.NUM_CLASSES)) | {255}
            # where a smaller image was padded, the label is 255 and the data zero
            pad = label[:, 0] == 255
            assert np.all(data.transpose(1, 0, 2, 3)[:, pad] == 0)
    finally:
        loader.close()


def test_loader_rejects_bad_batch():
    cfg = _cfg()
    with pytest.raises(ValueError, match='segdb is empty'):
        SegTrainLoader([], cfg)
    with pytest.raises(ValueError, match='multiple of the number of devices'):
        SegTrainLoader([{}], cfg, batch_size=3, ctx=[mx.cpu(), mx.cpu()])
