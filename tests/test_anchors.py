import numpy as np
import pytest

from dcn.rpn import generate_anchors
from dcn.rpn.generate_anchor import generate_shifted_anchors


def _by_hand(w, h, s, ctr=7.5):
    W, H = w * s, h * s
    return [ctr - (W - 1) / 2, ctr - (H - 1) / 2, ctr + (W - 1) / 2, ctr + (H - 1) / 2]


def test_default_anchors_hand_computed():
    # base 16x16 (area 256): ratio 0.5 -> w = round(sqrt(512)) = 23, h = round(11.5) = 12;
    # ratio 1 -> 16x16; ratio 2 -> w = round(sqrt(128)) = 11, h = 22
    a = generate_anchors(16, [0.5, 1, 2], [8, 16, 32])
    expected = [_by_hand(w, h, s) for (w, h) in [(23, 12), (16, 16), (11, 22)] for s in (8, 16, 32)]
    np.testing.assert_allclose(a, expected)
    # well-known first anchor of the released models
    np.testing.assert_allclose(a[0], [-84, -40, 99, 55])
    np.testing.assert_allclose(a[4], [-120, -120, 135, 135])


def test_coco_anchor_order_ratio_major():
    scales = [4, 8, 16, 32]
    a = generate_anchors(16, [0.5, 1, 2], scales)
    assert a.shape == (12, 4)
    for ri, (w, h) in enumerate([(23, 12), (16, 16), (11, 22)]):
        for si, s in enumerate(scales):
            np.testing.assert_allclose(a[ri * len(scales) + si], _by_hand(w, h, s))
    # all centred on the base box centre
    np.testing.assert_allclose((a[:, 0] + a[:, 2]) / 2, 7.5)


def test_shifted_anchors():
    base = generate_anchors(16, [1], [1])
    s = generate_shifted_anchors(2, 3, 16, base)
    assert s.shape == (6, 4)
    np.testing.assert_allclose(s[1], [16, 0, 31, 15])   # y=0, x=1
    np.testing.assert_allclose(s[3], [0, 16, 15, 31])   # y=1, x=0


def test_bad_anchor_args():
    with pytest.raises(ValueError, match='ratios'):
        generate_anchors(16, [], [8])
    with pytest.raises(ValueError, match='scales'):
        generate_anchors(16, [1], [-1])
