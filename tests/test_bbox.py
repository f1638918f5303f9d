import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dcn.bbox import bbox_overlaps, bbox_overlaps_py, bbox_pred, bbox_transform, clip_boxes


def _rand_boxes(rng, n, size=100):
    xy = rng.uniform(0, size, size=(n, 2))
    wh = rng.uniform(0, size / 2, size=(n, 2))
    return np.hstack([xy, xy + wh])


def test_overlaps_hand_case():
    a = np.array([[0, 0, 9, 9]], dtype=np.float64)            # 10x10
    b = np.array([[5, 5, 14, 14], [0, 0, 9, 9], [10, 10, 20, 20], [0, 0, 4, 9]], dtype=np.float64)
    # inter 5x5 = 25, union 175; identical; disjoint (touching corner excluded); half
    np.testing.assert_allclose(bbox_overlaps(a, b), [[25 / 175., 1.0, 0.0, 0.5]])


def test_cython_overlaps_match_numpy():
    rng = np.random.RandomState(0)
    a, b = _rand_boxes(rng, 50), _rand_boxes(rng, 30)
    np.testing.assert_allclose(bbox_overlaps(a, b), bbox_overlaps_py(a, b), rtol=1e-12)
    assert bbox_overlaps(a.astype(np.float32), b).shape == (50, 30)
    assert bbox_overlaps(np.zeros((0, 4)), b).shape == (0, 30)


def test_overlaps_bad_shape():
    with pytest.raises(ValueError, match='query_boxes'):
        bbox_overlaps(np.zeros((2, 4)), np.zeros((3,)))


def test_transform_hand_case():
    ex = np.array([[0, 0, 9, 19]], dtype=np.float64)        # w 10, h 20, centre (4.5, 9.5)
    gt = np.array([[5, 0, 24, 19]], dtype=np.float64)       # w 20, h 20, centre (14.5, 9.5)
    np.testing.assert_allclose(bbox_transform(ex, gt), [[1.0, 0.0, np.log(2), 0.0]])


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10000))
def test_transform_pred_round_trip(seed):
    rng = np.random.RandomState(seed)
    ex, gt = _rand_boxes(rng, 20), _rand_boxes(rng, 20)
    d = bbox_transform(ex, gt)
    np.testing.assert_allclose(bbox_pred(ex, d), gt, atol=1e-6)
    # class-specific layout: k blocks of 4
    d2 = np.hstack([d, np.zeros_like(d)])
    out = bbox_pred(ex, d2)
    np.testing.assert_allclose(out[:, 4:], ex, atol=1e-6)


def test_pred_empty_and_clip():
    assert bbox_pred(np.zeros((0, 4)), np.zeros((0, 8))).shape == (0, 8)
    b = np.array([[-5, -3, 120, 40, 3, 4, 200, 300]], dtype=np.float32)
    c = clip_boxes(b, (50, 100, 3))
    np.testing.assert_array_equal(c, [[0, 0, 99, 40, 3, 4, 99, 49]])
    assert b[0, 0] == -5   # input untouched
