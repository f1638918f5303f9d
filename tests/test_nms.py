import numpy as np
import pytest

from dcn.bbox import bbox_overlaps_py
from dcn.nms import cpu_nms_wrapper, gpu_nms_wrapper, py_nms_wrapper, soft_nms, soft_nms_wrapper


def brute_force_nms(dets, thresh):
    """Reference: repeatedly take the best remaining box, drop everything overlapping it."""
    alive = list(range(len(dets)))
    keep = []
    ious = bbox_overlaps_py(dets[:, :4], dets[:, :4])
    while alive:
        best = max(alive, key=lambda i: (dets[i, 4], -i))
        keep.append(best)
        alive = [i for i in alive if i != best and ious[best, i] < thresh]
    return keep


def _dets(rng, n):
    xy = rng.uniform(0, 60, size=(n, 2))
    wh = rng.uniform(5, 40, size=(n, 2))
    s = rng.permutation(n).astype(np.float32) / n + 0.01   # distinct scores
    return np.hstack([xy, xy + wh, s[:, None]]).astype(np.float32)


@pytest.mark.parametrize('thresh', [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(thresh):
    rng = np.random.RandomState(int(thresh * 10))
    for _ in range(20):
        d = _dets(rng, 60)
        ref = brute_force_nms(d, thresh)
        assert py_nms_wrapper(thresh)(d) == ref
        assert cpu_nms_wrapper(thresh)(d) == ref


def _original_greedy(dets, suppress):
    """The original's NMS loop: boxes in ``scores.argsort()[::-1]`` order, a box is
    dropped when ``suppress(iou with a kept box)``."""
    ious = bbox_overlaps_py(dets[:, :4].astype(np.float64), dets[:, :4].astype(np.float64))
    keep = []
    for i in dets[:, 4].argsort()[::-1]:
        if not any(suppress(ious[k, i]) for k in keep):
            keep.append(int(i))
    return keep


@pytest.mark.parametrize('n', [12, 40, 300])
def test_nms_equal_scores_in_the_original_order(n):
    rng = np.random.RandomState(n)
    # far apart boxes: nothing is suppressed, the order alone is compared
    xy = np.arange(n)[:, None] * 100.0 + rng.uniform(0, 5, (n, 2))
    far = np.hstack([xy, xy + 30, rng.choice([0.5, 1.0], (n, 1))]).astype(np.float32)
    original = list(far[:, 4].argsort()[::-1])
    assert original != list(np.argsort(-far[:, 4], kind='stable'))  # ties do matter
    assert cpu_nms_wrapper(0.5)(far) == original
    assert py_nms_wrapper(0.5)(far) == original
    # overlapping boxes with tied scores: which survive depends on that order
    d = _dets(rng, n)
    d[:, 4] = rng.choice([0.3, 0.6, 1.0], n).astype(np.float32)
    for thresh in (0.3, 0.7):
        assert cpu_nms_wrapper(thresh)(d) == _original_greedy(d, lambda o: o >= thresh)
        assert py_nms_wrapper(thresh)(d) == _original_greedy(d, lambda o: o > thresh)


def test_nms_threshold_boundary_as_the_original():
    # IoU exactly 0.5: the original's cpu_nms drops the box (ovr >= thresh), its numpy
    # nms keeps it (keeps ovr <= thresh)
    d = np.array([[0, 0, 9, 19, 0.9], [0, 0, 9, 9, 0.8]], dtype=np.float32)
    assert bbox_overlaps_py(d[:1, :4], d[1:, :4])[0, 0] == 0.5
    assert cpu_nms_wrapper(0.5)(d) == [0]
    assert py_nms_wrapper(0.5)(d) == [0, 1]


def test_nms_hand_case_and_empty():
    d = np.array([[0, 0, 9, 9, 0.9], [1, 1, 10, 10, 0.8], [20, 20, 29, 29, 0.7]], dtype=np.float32)
    # iou(0,1) = 81 / 119 = 0.68
    assert cpu_nms_wrapper(0.5)(d) == [0, 2]
    assert cpu_nms_wrapper(0.7)(d) == [0, 1, 2]
    assert cpu_nms_wrapper(0.5)(np.zeros((0, 5), np.float32)) == []
    assert py_nms_wrapper(0.5)(np.zeros((0, 5), np.float32)) == []


def test_nms_bad_input():
    with pytest.raises(ValueError, match='dets'):
        cpu_nms_wrapper(0.5)(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match='thresh'):
        cpu_nms_wrapper(1.5)


def test_soft_nms_linear_and_gaussian_by_hand():
    d = np.array([[0, 0, 9, 9, 0.9], [1, 1, 10, 10, 0.8], [20, 20, 29, 29, 0.7]], dtype=np.float32)
    iou = 81.0 / 119.0
    keep, scores = soft_nms(d, thresh=0.3, method='linear')
    # box 1 decays to 0.8 * (1 - iou) = 0.256 < 0.7 -> order 0, 2, 1
    assert keep == [0, 2, 1]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.8 * (1 - iou)], rtol=1e-5)
    keep, scores = soft_nms(d, method='gaussian', sigma=0.5)
    np.testing.assert_allclose(scores[-1], 0.8 * np.exp(-iou ** 2 / 0.5), rtol=1e-5)
    # hard mode equals NMS
    assert soft_nms_wrapper(0.5, method='hard')(d) == cpu_nms_wrapper(0.5)(d)
    # score threshold drops decayed boxes
    keep, _ = soft_nms(d, thresh=0.3, method='linear', score_thresh=0.3)
    assert keep == [0, 2]
    with pytest.raises(ValueError, match='method'):
        soft_nms(d, method='cubic')


def test_soft_nms_hard_matches_brute_force():
    rng = np.random.RandomState(3)
    d = _dets(rng, 40)
    assert soft_nms(d, thresh=0.5, method='hard', score_thresh=1e-6)[0] == \
        brute_force_nms(d, 0.5 + 1e-9)


def test_gpu_nms_wrapper_clear_error():
    try:
        import dcn.nms.gpu_nms  # noqa: F401
        pytest.skip('CUDA NMS is built here')
    except ImportError:
        pass
    with pytest.raises(ImportError, match='gpu_nms'):
        gpu_nms_wrapper(0.3, 0)
