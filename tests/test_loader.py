"""AnchorLoader / TestLoader on the synthetic Shapes dataset with a toy feature symbol."""
import os
import threading

import mxnet as mx
import numpy as np
import pytest

from dcn.config import load_config, update_config
from dcn.loader import AnchorLoader, TestLoader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('data'))
    cfg = update_config(load_config(MINI_CFG), {'dataset': {
        'root_path': data, 'dataset_path': os.path.join(data, 'shapes')}})
    from dcn.dataset import load_gt_roidb
    _, roidb = load_gt_roidb(cfg, 'minitrain', flip=False)
    # stride-16 toy feature extractor: 4 stride-2 poolings, 2A channels
    feat = mx.sym.Pooling(mx.sym.var('data'), kernel=(2, 2), stride=(2, 2), pool_type='max',
                          pooling_convention='full')
    for _ in range(3):
        feat = mx.sym.Pooling(feat, kernel=(2, 2), stride=(2, 2), pool_type='max',
                              pooling_convention='full')
    feat = mx.sym.Convolution(feat, num_filter=18, kernel=(1, 1), name='rpn_cls_score')
    return cfg, roidb, feat


def test_anchor_loader_batches(setup):
    cfg, roidb, feat = setup
    loader = AnchorLoader(feat, roidb, cfg, batch_size=2, shuffle=True, ctx=[mx.cpu()],
                          anchor_scales=(2, 4, 8), aspect_grouping=True, seed=0)
    try:
        assert [d.name for d in loader.provide_data] == ['data', 'im_info', 'gt_boxes']
        assert [d.name for d in loader.provide_label] == ['label', 'bbox_target', 'bbox_weight']
        batches = list(loader)
        assert len(batches) == len(roidb) // 2
        seen = set()
        for b in batches:
            data, im_info, gt = [d.asnumpy() for d in b.data]
            label, target, weight = [d.asnumpy() for d in b.label]
            n, _, h, w = data.shape
            fh, fw = int(np.ceil(h / 16.)), int(np.ceil(w / 16.))
            assert label.shape == (n, 9 * fh * fw) and target.shape == (n, 36, fh, fw)
            assert weight.shape == target.shape
            for k in range(n):
                rec = roidb[b.index[k]]
                real = gt[k][gt[k][:, 4] > 0]
                assert len(real) == np.sum(rec['gt_classes'] > 0)
                np.testing.assert_allclose(real[:, :4], rec['boxes'][rec['gt_classes'] > 0] *
                                           im_info[k, 2], rtol=1e-5)
                assert np.all(gt[k][gt[k][:, 4] <= 0] == -1)
                assert np.sum(label[k] == 1) > 0  # each image has positives
            orient = {rec['width'] >= rec['height'] for rec in (roidb[i] for i in b.index)}
            assert len(orient) == 1  # aspect grouping
            seen.update(int(i) for i in b.index)
        assert len(seen) == 2 * len(batches)
        loader.reset()
        assert len(list(loader)) == len(batches)
    finally:
        loader.close()
    assert not any(t.name.startswith('AnchorLoader') and t.is_alive()
                   for t in threading.enumerate())


def test_anchor_loader_reproducible_and_errors(setup):
    cfg, roidb, feat = setup
    runs = []
    for _ in range(2):
        with AnchorLoader(feat, roidb, cfg, batch_size=1, shuffle=True, seed=5,
                          anchor_scales=(2, 4, 8)) as loader:
            runs.append([(b.index[0], b.label[0].asnumpy()) for b in loader])
    assert [r[0] for r in runs[0]] == [r[0] for r in runs[1]]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(*runs))
    with pytest.raises(ValueError, match='batch_size'):
        AnchorLoader(feat, roidb, cfg, batch_size=3, ctx=[mx.cpu(), mx.cpu()])
    broken = [dict(roidb[0], image='/nonexistent/img.png')]
    with pytest.raises(Exception, match='nonexistent'):
        AnchorLoader(feat, broken, cfg, batch_size=1)


def test_test_loader_pads_last_batch(setup):
    cfg, roidb, _ = setup
    loader = TestLoader(roidb[:5], cfg, batch_size=2)
    try:
        batches = list(loader)
        assert [b.pad for b in batches] == [0, 0, 1]
        assert [list(b.index) for b in batches] == [[0, 1], [2, 3], [4]]
        data, im_info = [d.asnumpy() for d in batches[-1].data]
        assert data.shape[0] == 2 and np.array_equal(im_info[0], im_info[1])
        assert im_info[0, 2] > 0
    finally:
        loader.close()
