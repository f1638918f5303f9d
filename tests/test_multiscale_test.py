"""Multi-scale testing and the original FPN tester's Gaussian soft-NMS, for every detector:
each scale tests the whole set, the candidates of all scales are merged per class, then
(soft-)NMS and the per-image cap. Expected values follow the original's rules."""
import numpy as np
import pytest

from dcn.config import default_config, get_test_scales, update_config
from dcn.engine.predictor import nms_for_config
from dcn.nms import original_soft_nms
from dcn.tester import merge_scales, pred_eval

from test_tester import FakeIMDB, _batch


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = w * h
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_original_soft_nms_gaussian_no_cutoff_and_cap():
    dets = np.array([[0, 0, 9, 9, 0.9], [1, 1, 10, 10, 0.8], [50, 50, 59, 59, 0.5],
                     [0, 0, 9, 9, 0.0001]], np.float32)
    keep, scores = original_soft_nms(dets.copy(), 0.6)
    # the best box first, then the rest re-ranked after each decay exp(-IoU^2 / sigma)
    s1 = 0.8 * np.exp(-_iou(dets[0], dets[1]) ** 2 / 0.6)
    s3 = 0.0001 * np.exp(-1.0 / 0.6)
    s3 = s3 * np.exp(-_iou(dets[1], dets[3]) ** 2 / 0.6)
    assert s1 < 0.5                                   # B decays below C
    assert keep.tolist() == [0, 2, 1, 3]
    np.testing.assert_allclose(scores, sorted([0.9, s1, 0.5, s3], reverse=True), rtol=1e-5)
    assert scores[-1] > 0                             # no score cut-off
    keep2, _ = original_soft_nms(dets.copy(), 0.6, max_dets=2)
    assert keep2.tolist() == keep.tolist()[:2]
    # equal scores: numpy's default argsort, reversed (the original's order)
    tied = np.array([[0, 0, 5, 5, 0.7], [100, 0, 105, 5, 0.7], [200, 0, 205, 5, 0.7]],
                    np.float32)
    assert original_soft_nms(tied, 0.6)[0][0] == tied[:, 4].argsort()[::-1][0]


def test_test_scales_default_to_the_first_scale():
    cfg = default_config()
    assert get_test_scales(cfg) == [tuple(cfg.SCALES)]
    cfg = update_config(cfg, {'TEST_SCALES': [[300, 500], [600, 1000]]})
    assert get_test_scales(cfg) == [(300, 500), (600, 1000)]


def test_merge_scales_then_nms_and_cap():
    nms = nms_for_config(update_config(default_config(), {'TEST': {'NMS': 0.3}}))
    a = [np.zeros((0, 5), np.float32),
         np.array([[0, 0, 20, 20, 0.9]], np.float32),            # class 1, scale 1
         np.array([[50, 50, 70, 70, 0.4]], np.float32)]          # class 2, scale 1
    b = [np.zeros((0, 5), np.float32),
         np.array([[1, 1, 21, 21, 0.95], [80, 0, 99, 20, 0.3]], np.float32),
         np.zeros((0, 5), np.float32)]
    merged = [[], [a[1], b[1]], [a[2], b[2]]]
    dets = merge_scales(merged, nms, max_per_image=0)
    # the 0.9 box of scale 1 is suppressed by the 0.95 one of scale 2 (IoU > 0.3)
    np.testing.assert_array_equal(dets[1][:, 4], np.array([0.95, 0.3], np.float32))
    assert len(dets[2]) == 1
    capped = merge_scales(merged, nms, max_per_image=2)   # the 2 best over all classes
    assert sorted(np.hstack([capped[1][:, 4], capped[2][:, 4]]).tolist()) == \
        pytest.approx([0.4, 0.95])


def test_pred_eval_merges_two_scales_with_soft_nms(tmp_path):
    cfg = update_config(default_config(), {
        'CLASS_AGNOSTIC': False,
        'TEST': {'USE_SOFTNMS': True, 'SOFTNMS_THRESH': 0.6, 'max_per_image': 100}})
    rois = np.array([[i, *b] for i in range(2) for b in ([0, 0, 20, 20], [40, 40, 60, 60])],
                    np.float32)

    def fake(scores):
        class P(object):
            def predict(self, batch):
                return {'rois_output': rois,
                        'cls_prob_reshape_output': np.stack([scores, scores]),
                        'bbox_pred_reshape_output': np.zeros((2, 2, 12), np.float32)}
        return P()

    class Data(object):
        provide_data = [('data', (2, 3, 8, 8)), ('im_info', (2, 3))]

        def __init__(self, scale):
            self.scale = scale

        def __iter__(self):
            return iter([_batch(np.array([[100, 100, self.scale]] * 2, np.float32), [0, 1])])

    s = np.array([[0.1, 0.9, 0.0], [0.2, 0.0, 0.6]], np.float32)
    # one predictor for both scales: scale 1.0 and 2.0 give the same rois, halved at 2.0
    imdb = FakeIMDB(str(tmp_path))
    pred_eval(fake(s), [Data(1.0), Data(2.0)], imdb, cfg, thresh=1e-3)
    got = imdb.received
    # class 1 of image 0: the box at scale 1 (0..20) and at scale 2 (0..10), soft-NMS'd
    cand = np.array([[0, 0, 20, 20, 0.9], [0, 0, 10, 10, 0.9]], np.float32)
    keep, scores = original_soft_nms(cand.copy(), 0.6, 100)
    np.testing.assert_allclose(got[1][0][:, :4], cand[keep, :4], atol=1e-4)
    np.testing.assert_allclose(got[1][0][:, 4], scores, rtol=1e-6)
    assert got[1][0][1, 4] < 0.9                        # the second one decayed
    assert len(got[2][1]) == 2 and len(got[1][1]) == 2
