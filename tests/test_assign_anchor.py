"""Anchor labelling: sampling budget, best anchor of each gt, layout and border handling."""
import numpy as np
import pytest

from dcn.config import default_config
from dcn.rpn import generate_anchors
from dcn.rpn.assign_anchor import assign_anchor


def _iou(a, b):
    """IoU matrix, legacy (+1) pixel convention, written independently of dcn.bbox."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _anchors_ahw(h, w, stride=16, scales=(8, 16, 32), ratios=(0.5, 1, 2)):
    """Anchors indexed [a, y, x] (the label layout)."""
    base = np.asarray(generate_anchors(base_size=stride, ratios=np.array(ratios),
                                       scales=np.array(scales)), dtype=np.float64)
    out = np.zeros((base.shape[0], h, w, 4))
    for a in range(base.shape[0]):
        for y in range(h):
            for x in range(w):
                out[a, y, x] = base[a] + np.array([x, y, x, y]) * stride
    return out


@pytest.fixture
def cfg():
    return default_config()


def test_sampling_budget_and_fg_fraction(cfg):
    rng = np.random.RandomState(0)
    gt = []
    for _ in range(30):
        x, y = rng.uniform(0, 500, 2)
        gt.append([x, y, x + rng.uniform(40, 200), y + rng.uniform(40, 200), 1])
    gt = np.array(gt, np.float32)
    cfg.TRAIN.RPN_BATCH_SIZE = 64
    res = assign_anchor((1, 18, 38, 50), gt, [600, 800, 1.0], cfg, rng=np.random.RandomState(1))
    label = res['label']
    assert label.shape == (1, 9 * 38 * 50)
    num_fg, num_bg = np.sum(label == 1), np.sum(label == 0)
    assert num_fg == 32  # many candidates: exactly RPN_FG_FRACTION * RPN_BATCH_SIZE
    assert num_fg + num_bg == 64
    assert res['bbox_target'].shape == (1, 36, 38, 50)
    # foreground anchors get RPN_BBOX_WEIGHTS on their four channels, others zero
    w = res['bbox_weight'].reshape(9, 4, 38, 50)
    lab = label.reshape(9, 38, 50)
    assert np.all(w[:, :, :][np.repeat((lab == 1)[:, None], 4, axis=1)] == 1)
    assert np.all(w[np.repeat((lab != 1)[:, None], 4, axis=1)] == 0)


def test_each_gt_best_anchor_is_positive_and_targets_layout(cfg):
    h, w = 20, 25
    gt = np.array([[30, 40, 61, 55, 1],      # small, low IoU with every anchor
                   [150, 100, 260, 300, 2]], np.float32)
    cfg.TRAIN.RPN_BATCH_SIZE = 100000  # no subsampling
    res = assign_anchor((1, 18, h, w), gt, [320, 400, 1.0], cfg, rng=np.random.RandomState(0))
    label = res['label'].reshape(9, h, w)
    anchors = _anchors_ahw(h, w)
    flat = anchors.reshape(-1, 4)
    inside = (flat[:, 0] >= 0) & (flat[:, 1] >= 0) & (flat[:, 2] < 400) & (flat[:, 3] < 320)
    ious = _iou(flat, gt[:, :4].astype(np.float64))
    ious[~inside] = -1
    for g in range(2):
        best = np.argmax(ious[:, g])
        assert label.reshape(-1)[best] == 1
    assert ious[:, 0].max() < 0.7  # the first gt is only matched through its best anchor
    assert np.all(label.reshape(-1)[~inside] == -1)
    max_iou = ious.max(axis=1)
    assert np.all(label.reshape(-1)[inside & (max_iou >= 0.7)] == 1)
    assert np.all(label.reshape(-1)[inside & (max_iou < 0.3) & (max_iou >= 0)][:50] >= 0)
    # regression target of a positive anchor, computed by hand
    idx = np.argmax(ious[:, 1])
    a, rem = divmod(idx, h * w)
    y, x = divmod(rem, w)
    ex, g = anchors[a, y, x], gt[1, :4]
    ew, eh = ex[2] - ex[0] + 1, ex[3] - ex[1] + 1
    gw, gh = g[2] - g[0] + 1, g[3] - g[1] + 1
    expect = [((g[0] + 0.5 * (gw - 1)) - (ex[0] + 0.5 * (ew - 1))) / ew,
              ((g[1] + 0.5 * (gh - 1)) - (ex[1] + 0.5 * (eh - 1))) / eh,
              np.log(gw / ew), np.log(gh / eh)]
    np.testing.assert_allclose(res['bbox_target'][0, 4 * a:4 * a + 4, y, x], expect, rtol=1e-4,
                               atol=1e-5)


def test_no_gt_all_background_and_reproducible(cfg):
    r1 = assign_anchor((1, 18, 10, 10), np.zeros((0, 5)), [160, 160, 1.0], cfg,
                       rng=np.random.RandomState(3))
    r2 = assign_anchor((1, 18, 10, 10), np.zeros((0, 5)), [160, 160, 1.0], cfg,
                       rng=np.random.RandomState(3))
    assert np.sum(r1['label'] == 1) == 0
    assert 0 < np.sum(r1['label'] == 0) <= cfg.TRAIN.RPN_BATCH_SIZE
    np.testing.assert_array_equal(r1['label'], r2['label'])
    assert np.all(r1['bbox_weight'] == 0)


def test_bad_inputs(cfg):
    with pytest.raises(ValueError, match='gt_boxes'):
        assign_anchor((1, 18, 5, 5), np.zeros((3, 2)), [80, 80, 1], cfg)
    with pytest.raises(ValueError, match='im_info'):
        assign_anchor((1, 18, 5, 5), np.zeros((0, 5)), [80], cfg)
    with pytest.raises(ValueError, match='NaN'):
        assign_anchor((1, 18, 5, 5), np.array([[0, 0, np.nan, 5, 1]]), [80, 80, 1], cfg)
