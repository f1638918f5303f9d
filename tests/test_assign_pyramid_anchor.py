"""Multi-level anchor targets (the original's assign_pyramid_anchor): all levels labelled
jointly, every anchor counted (infinite allowed border), per-level (A, H, W) layout
concatenated P2..P6; the FPN training loader."""
import os

import numpy as np
import pytest

import fpn  # noqa: F401  (FPN config keys)
from dcn.config import default_config, load_config, update_config
from dcn.rpn import assign_anchor, assign_pyramid_anchor
from dcn.rpn.assign_anchor import shifted_anchors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, 'lib', 'dcn', 'ops', 'libdcn_ops.so')


def _cfg(batch=256):
    cfg = default_config()
    cfg.TRAIN.RPN_BATCH_SIZE = batch
    return cfg


def test_one_level_equals_single_map_assignment_with_infinite_border():
    gt = np.array([[10, 20, 90, 70, 1], [40, 40, 150, 120, 2]], np.float32)
    info = np.array([128, 160, 1.0], np.float32)
    one = assign_pyramid_anchor([(1, 6, 16, 20)], gt, info, _cfg(), feat_strides=(8,),
                                scales=(4,), rng=np.random.RandomState(3))
    ref = assign_anchor((1, 6, 16, 20), gt, info, _cfg(), feat_stride=8, scales=(4,),
                        allowed_border=np.inf, rng=np.random.RandomState(3))
    np.testing.assert_array_equal(one['label'], ref['label'])
    np.testing.assert_array_equal(one['bbox_target'], ref['bbox_target'].reshape(1, 12, -1))
    np.testing.assert_array_equal(one['bbox_weight'], ref['bbox_weight'].reshape(1, 12, -1))


def test_levels_labelled_jointly_and_laid_out_per_level():
    strides, shapes = (4, 8), [(1, 6, 16, 16), (1, 6, 8, 8)]
    info = np.array([64, 64, 1.0], np.float32)
    # the gt box is exactly one P3 anchor (ratio 1, 64 x 64 at position (2, 3)): IoU 1
    p3, a = shifted_anchors(8, 8, 8, (8,), (0.5, 1, 2))
    pos = (3 * 8 + 2) * a + 1
    gt = np.hstack([p3[pos], [1]])[np.newaxis].astype(np.float32)
    res = assign_pyramid_anchor(shapes, gt, info, _cfg(batch=-1), strides, scales=(8,),
                                rng=np.random.RandomState(0))
    n2, n3 = 3 * 16 * 16, 3 * 8 * 8
    assert res['label'].shape == (1, n2 + n3)
    assert res['bbox_target'].shape == (1, 12, 16 * 16 + 8 * 8)
    lab2, lab3 = res['label'][0, :n2], res['label'][0, n2:]
    # (A, H, W) layout of P3: anchor 1 at row 3, column 2
    assert lab3.reshape(3, 8, 8)[1, 3, 2] == 1
    # the gt's best anchor is taken over the union of levels: no P2 anchor (all far below
    # 0.7) is claimed as the gt's best, which labelling P2 alone would do
    assert (lab2 == 1).sum() == 0 and (lab2 == 0).sum() > 0
    alone = assign_pyramid_anchor(shapes[:1], gt, info, _cfg(batch=-1), strides[:1],
                                  scales=(8,), rng=np.random.RandomState(0))
    assert (alone['label'] == 1).sum() >= 1
    # anchors crossing the border take part (bottom-right P2 anchors)
    p2, _ = shifted_anchors(16, 16, 4, (8,), (0.5, 1, 2))
    corner = p2.reshape(16, 16, 3, 4)[15, 15]
    assert (corner[:, 2] >= 64).all()                      # they cross the image border
    assert (lab2.reshape(3, 16, 16)[:, 15, 15] == 0).all()  # and are labelled background
    w = res['bbox_weight'][0].reshape(3, 4, -1)[:, :, 16 * 16:].reshape(3, 4, 8, 8)
    assert (w[1, :, 3, 2] == 1).all() and w.sum() == 4 * (lab3 == 1).sum()


def test_one_sample_of_rpn_batch_size_over_all_levels():
    rng = np.random.RandomState(0)
    gt = np.array([[5, 5, 60, 40, 1], [100, 80, 220, 200, 3], [30, 120, 70, 160, 2]],
                  np.float32)
    info = np.array([224, 256, 1.0], np.float32)
    strides = (4, 8, 16, 32, 64)
    shapes = [(1, 6, -(-224 // s), -(-256 // s)) for s in strides]
    res = assign_pyramid_anchor(shapes, gt, info, _cfg(batch=64), strides, scales=(8,),
                                rng=rng)
    lab = res['label'][0]
    assert ((lab == 1) | (lab == 0)).sum() == 64
    assert 1 <= (lab == 1).sum() <= 32
    with pytest.raises(ValueError, match='strides'):
        assign_pyramid_anchor(shapes[:2], gt, info, _cfg(), strides)


@pytest.mark.skipif(not os.path.isfile(LIB), reason='needs the compiled operator library')
def test_fpn_loader_labels_fit_the_training_symbol(tmp_path):
    import fpn.symbols.resnet_v1_18_fpn_rcnn as m
    from dcn.dataset import get_imdb
    cfg = load_config(os.path.join(ROOT, 'experiments', 'fpn', 'cfgs', 'shapes_mini_fpn.yaml'))
    cfg = update_config(cfg, {'dataset': {'root_path': str(tmp_path),
                                          'dataset_path': str(tmp_path / 'shapes')}})
    imdb = get_imdb('Shapes', 'minitrain', str(tmp_path), str(tmp_path / 'shapes'))
    roidb = imdb.gt_roidb()[:2]
    for r in roidb:
        r['flipped'] = False
    net = m.resnet_v1_18_fpn_rcnn()
    sym = net.get_symbol(cfg, is_train=True)
    loader = net.build_train_loader(sym, roidb, cfg, 1, None, 0)
    try:
        batch = next(iter(loader))
        shapes = {d.name: d.shape for d in loader.provide_data + loader.provide_label}
        h, w = shapes['data'][2:]
        assert h % 32 == 0 and w % 32 == 0
        im_info = batch.data[1].asnumpy()[0]
        assert (im_info[0], im_info[1]) == (h, w)   # padded size in im_info
        _, outs, _ = sym.infer_shape(**shapes)
        out = dict(zip(sym.list_outputs(), outs))
        assert out['rpn_cls_prob_output'] == (1, 2, shapes['label'][1])
        assert out['rpn_bbox_loss_output'] == shapes['bbox_target']
        lab = batch.label[0].asnumpy()
        assert ((lab == 0) | (lab == 1)).sum() == cfg.TRAIN.RPN_BATCH_SIZE
    finally:
        loader.close() if hasattr(loader, 'close') else None
