"""TRAIN.ORIGINAL_QUIRKS: where this project differs from the original on purpose, the key
gives back the original's behaviour; each test states the original's rule."""
import cv2
import numpy as np
import pytest

from dcn.config import default_config, update_config
from dcn.loader import _grouped_order, _original_order
from dcn.layers.proposal import proposal_single
from dcn.layers.proposal_target import sample_rois
from dcn.rpn.assign_anchor import assign_anchor
from dcn.train import lr_schedule


def _quirks(on=True, **train):
    return update_config(default_config(), {'TRAIN': dict({'ORIGINAL_QUIRKS': on}, **train)})


def _roidb(n_landscape, n_portrait):
    return [{'width': 400, 'height': 300}] * n_landscape + \
        [{'width': 300, 'height': 400}] * n_portrait


def test_aspect_grouping_order_of_the_original():
    roidb = _roidb(7, 5)
    landscape = set(range(7))
    # one image per batch: every landscape image first, then every portrait one (the
    # original permutes rows only when the batch size leaves a remainder)
    batches = _original_order(roidb, 1, True, True, np.random.RandomState(0))
    order = [int(b[0]) for b in batches]
    assert set(order[:7]) == landscape and sorted(order) == list(range(12))
    # 12 % 5 = 2: the first 10 of (landscape, portrait) are permuted by rows of 5, the last
    # 2 left out of the epoch
    batches = _original_order(roidb, 5, True, True, np.random.RandomState(0))
    assert len(batches) == 2 and all(len(b) == 5 for b in batches)
    assert len(set(np.concatenate(batches))) == 10
    # no shuffling: the roidb order, without grouping
    assert [list(b) for b in _original_order(roidb, 3, False, True, None)] == \
        [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    # ours shuffles the batches of each group together
    ours = [int(b[0]) for b in _grouped_order(roidb, 1, True, True, np.random.RandomState(0))]
    assert set(ours[:7]) != landscape


def test_gt_boxes_truncated_then_rounded_and_clipped(tmp_path, monkeypatch):
    from dcn import dataset
    from dcn.image import get_train_image
    path = str(tmp_path / 'im.png')
    cv2.imwrite(path, np.zeros((100, 150, 3), np.uint8))
    rec = {'image': path, 'height': 100, 'width': 150, 'flipped': False,
           'boxes': np.array([[10.7, 20.2, 60.6, 99.9], [0.4, 1.5, 149.9, 50.5]], np.float32),
           'gt_classes': np.array([1, 2])}

    class FakeImdb(object):
        num_classes = 21
        name = 'fake'

        def gt_roidb(self):
            return [dict(rec)]

        def append_flipped_images(self, roidb):
            return roidb

    monkeypatch.setattr(dataset, 'get_imdb', lambda *a, **k: FakeImdb())
    cfg = update_config(_quirks(), {'SCALES': [200, 500]})  # scale 2
    _, roidb = dataset.load_gt_roidb(cfg, 'x', flip=False)
    # the original stores the boxes as uint16: truncated
    np.testing.assert_array_equal(roidb[0]['boxes'], rec['boxes'].astype(np.uint16))
    # then, for training, clip_boxes(np.round(boxes * scale), (h, w)) of the resized image
    _, im_info, gt = get_train_image(roidb[0], cfg, scale_index=0)
    scale = float(im_info[2])
    assert scale == 2.0 and tuple(im_info[:2]) == (200, 300)
    want = np.round(rec['boxes'].astype(np.uint16) * scale)
    want[:, 0::2] = np.clip(want[:, 0::2], 0, 299)
    want[:, 1::2] = np.clip(want[:, 1::2], 0, 199)
    np.testing.assert_array_equal(gt[:, :4], want)
    # ours keeps the float boxes, scaled
    _, _, gt_ours = get_train_image(rec, default_config(), scale_index=0)
    assert not np.array_equal(gt_ours[:, :4], want)


def test_gap_filling_of_the_original():
    # 10 proposals, all foreground, and the gt: BATCH_ROIS 8, FG_FRACTION 0.25 -> 2 fg, no
    # bg; the original fills the 6 other slots with RoIs drawn from all candidates without
    # repeats and labels everything after the fg ones background
    gt = np.array([[20, 20, 80, 80, 3]], np.float32)
    rng = np.random.RandomState(0)
    boxes = gt[:, :4] + rng.uniform(-2, 2, (10, 4))
    rois = np.hstack([np.zeros((11, 1)), np.vstack([boxes, gt[:, :4]])]).astype(np.float32)
    params = {'fg_thresh': 0.5, 'bg_thresh_hi': 0.5, 'bg_thresh_lo': 0.0, 'num_reg_classes': 4,
              'normalize': False, 'means': np.zeros(4, np.float32),
              'stds': np.ones(4, np.float32), 'bbox_weights': np.ones(4, np.float32)}
    out_rois, labels, _, weights = sample_rois(rois, gt, 4, 8, 2, np.random.RandomState(1),
                                               dict(params, original_gaps=True))
    assert list(labels[:2]) == [3, 3] and np.all(labels[2:] == 0)
    assert np.all(weights[2:] == 0)
    assert len(np.unique(out_rois[2:], axis=0)) == 6  # one draw: no repeats
    # ours never labels a foreground RoI background
    _, labels, _, _ = sample_rois(rois, gt, 4, 8, 2, np.random.RandomState(1), params)
    assert np.all(labels == 3)


def test_gt_touching_no_anchor_claims_every_anchor_it_misses():
    # 32-pixel anchors inside the image start at x = 8: the gt in the corner touches none.
    # The original's gt_argmax_overlaps = where(overlaps == max over anchors = 0): every
    # anchor is labelled foreground before subsampling
    gt = np.array([[0, 0, 3, 3, 1], [100, 100, 180, 170, 2]], np.float32)
    kwargs = dict(feat_stride=16, scales=(2,), ratios=(1,), rng=np.random.RandomState(0))
    cfg = _quirks(RPN_BATCH_SIZE=64)
    res = assign_anchor((1, 2, 16, 16), gt, [256, 256, 1.0], cfg, **kwargs)
    assert np.sum(res['label'] == 1) == 32  # the foreground budget, filled
    res = assign_anchor((1, 2, 16, 16), gt, [256, 256, 1.0], _quirks(False, RPN_BATCH_SIZE=64),
                        **kwargs)
    assert 0 < np.sum(res['label'] == 1) < 10  # ours: the anchors near the second gt only


def test_proposal_padding_random_as_the_original():
    # 4 anchors, 2 survive NMS, 6 slots: the original pads with npr.choice(keep, 4)
    cls = np.zeros((2, 1, 2), np.float32)
    cls[1] = [[0.9, 0.8]]
    cls[0] = 1 - cls[1]
    deltas = np.zeros((4, 1, 2), np.float32)
    args = (cls, deltas, np.array([16, 32, 1.0]), 16, (1,), (1,), -1, 6, 0.7, 0)
    np.random.seed(3)
    boxes, scores = proposal_single(*args, random_pad=True)
    np.random.seed(3)
    pad = np.random.choice([0, 1], size=4)
    np.testing.assert_array_equal(scores, np.float32([0.9, 0.8])[np.hstack(([0, 1], pad))])
    _, scores = proposal_single(*args)
    np.testing.assert_array_equal(scores, np.float32([0.9, 0.8, 0.9, 0.8, 0.9, 0.8]))


def test_warmup_again_on_resume():
    train = dict(lr=0.1, lr_step='3', warmup=True, warmup_lr=0.01, warmup_step=5)
    _, sched = lr_schedule(_quirks(**train), 2, 10)
    assert sched.warmup and sched(0) == 0.01 and sched(5) == 0.1
    _, sched = lr_schedule(_quirks(False, **train), 2, 10)
    assert not sched.warmup and sched(0) == 0.1


@pytest.mark.parametrize('on', [False, True])
def test_quirks_reach_the_training_graph(on):
    import json
    import mxnet as mx
    import dcn.layers as ops
    cfg = _quirks(on)
    t = ops.proposal_target(mx.sym.var('rois'), mx.sym.var('gt'), cfg, 3)[0]
    p = ops.rpn_proposal(mx.sym.var('c'), mx.sym.var('b'), mx.sym.var('i'), cfg, True)
    attrs = {n['name']: n.get('attrs', {}) for n in json.loads(mx.sym.Group([t, p]).tojson())['nodes']}
    assert attrs['proposal_target']['original_gaps'] == str(on)
    assert attrs['rois']['random_pad'] == str(on)
    test = ops.rpn_proposal(mx.sym.var('c'), mx.sym.var('b'), mx.sym.var('i'), cfg, False)
    assert json.loads(test.tojson())['nodes'][-1]['attrs']['random_pad'] == 'False'
