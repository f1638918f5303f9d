"""The ``pyramid_proposal`` CustomOp against a plain numpy re-statement of the original's
fpn/operator_py/pyramid_proposal.py (its anchors, decoding, one global sort of all levels by
numpy's default argsort reversed, pre-NMS top-N, greedy NMS, post-NMS top-N and random
padding), on random maps with many equal scores."""
import numpy as np
import pytest
import mxnet as mx

import dcn.layers  # noqa: F401  (registers the CustomOps)
from dcn.layers.pyramid_proposal import PyramidProposalProp, pyramid_proposal_numpy

STRIDES = (4, 8, 16, 32, 64)


def ref_anchors(base_size, ratios, scales):
    """The original's generate_anchors (legacy +1 widths, numpy rounding)."""
    base = np.array([1, 1, base_size, base_size]) - 1
    w, h = base[2] - base[0] + 1, base[3] - base[1] + 1
    xc, yc = base[0] + 0.5 * (w - 1), base[1] + 0.5 * (h - 1)
    ws = np.round(np.sqrt(w * h / np.array(ratios)))
    hs = np.round(ws * np.array(ratios))
    out = []
    for rw, rh in zip(ws, hs):
        for s in scales:
            sw, sh = rw * s, rh * s
            out.append([xc - 0.5 * (sw - 1), yc - 0.5 * (sh - 1), xc + 0.5 * (sw - 1),
                        yc + 0.5 * (sh - 1)])
    return np.array(out)


def ref_decode(anchors, d):
    w = anchors[:, 2] - anchors[:, 0] + 1.0
    h = anchors[:, 3] - anchors[:, 1] + 1.0
    cx, cy = anchors[:, 0] + 0.5 * (w - 1), anchors[:, 1] + 0.5 * (h - 1)
    px, py = d[:, 0] * w + cx, d[:, 1] * h + cy
    pw, ph = np.exp(d[:, 2]) * w, np.exp(d[:, 3]) * h
    return np.stack([px - 0.5 * (pw - 1), py - 0.5 * (ph - 1), px + 0.5 * (pw - 1),
                     py + 0.5 * (ph - 1)], 1)


def ref_nms(dets, thresh):
    x1, y1, x2, y2, sc = dets.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = sc.argsort()[::-1]
    suppressed = np.zeros(len(dets), bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        w = np.maximum(0, np.minimum(x2[i], x2) - np.maximum(x1[i], x1) + 1)
        h = np.maximum(0, np.minimum(y2[i], y2) - np.maximum(y1[i], y1) + 1)
        inter = w * h
        suppressed |= inter / (areas[i] + areas - inter) > thresh
    return np.array(keep)


def ref_pyramid_proposal(probs, deltas, im_info, pre, post, thresh, min_size, scales=(8,),
                         ratios=(0.5, 1, 2)):
    A = len(scales) * len(ratios)
    props, scores = [], []
    for prob, delta, s in zip(probs, deltas, STRIDES):
        base = ref_anchors(s, ratios, scales)
        h, w = int(im_info[0] / s), int(im_info[1] / s)
        sx, sy = np.meshgrid(np.arange(w) * s, np.arange(h) * s)
        shifts = np.vstack((sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel())).T
        anchors = (base.reshape((1, A, 4)) + shifts.reshape((1, -1, 4)).transpose((1, 0, 2)))
        anchors = anchors.reshape((-1, 4))
        d = delta[:, :, :h, :w].transpose((0, 2, 3, 1)).reshape((-1, 4))
        sc = prob[:, A:, :h, :w].transpose((0, 2, 3, 1)).reshape((-1, 1))
        p = ref_decode(anchors, d)
        p[:, 0::2] = np.clip(p[:, 0::2], 0, im_info[1] - 1)
        p[:, 1::2] = np.clip(p[:, 1::2], 0, im_info[0] - 1)
        ws, hs = p[:, 2] - p[:, 0] + 1, p[:, 3] - p[:, 1] + 1
        keep = np.where((ws >= min_size * im_info[2]) & (hs >= min_size * im_info[2]))[0]
        props.append(p[keep])
        scores.append(sc[keep])
    props, scores = np.vstack(props), np.vstack(scores)
    order = scores.ravel().argsort()[::-1][:pre]
    props, scores = props[order], scores[order]
    keep = ref_nms(np.hstack((props, scores)).astype(np.float32), thresh)[:post]
    if len(keep) < post:
        keep = np.hstack((keep, np.random.choice(keep, size=post - len(keep))))
    return (np.hstack((np.zeros((post, 1)), props[keep])).astype(np.float32),
            scores[keep].astype(np.float32))


def random_inputs(rng, padded_hw=(224, 288), im_hw=(210, 270), levels=5):
    probs, deltas = [], []
    for s in STRIDES[:levels]:
        h, w = -(-padded_hw[0] // s), -(-padded_hw[1] // s)
        fg = rng.randint(0, 12, (1, 3, h, w)) / 12.0  # few distinct values: many ties
        probs.append(np.concatenate([1 - fg, fg], 1).astype(np.float32))
        deltas.append((rng.randn(1, 12, h, w) * 0.2).astype(np.float32))
    im_info = np.array([[im_hw[0], im_hw[1], 1.0]], np.float32)
    return probs, deltas, im_info


@pytest.mark.parametrize('pre,post', [(12000, 2000), (600, 150), (300, 1000)])
def test_matches_the_original_algorithm(pre, post):
    for seed in range(3):
        rng = np.random.RandomState(seed)
        probs, deltas, im_info = random_inputs(rng)
        np.random.seed(100 + seed)
        ref_rois, ref_scores = ref_pyramid_proposal(probs, deltas, im_info[0], pre, post, 0.7, 0)
        np.random.seed(100 + seed)
        rois, scores = pyramid_proposal_numpy(probs, deltas, im_info, STRIDES, (8,),
                                              (0.5, 1, 2), pre, post, 0.7, 0)
        np.testing.assert_array_equal(rois, ref_rois)
        np.testing.assert_array_equal(scores, ref_scores)


def test_no_per_level_top_n_and_global_order():
    # level l scores in [0.1 (l + 1), 0.1 (l + 1) + 0.001): one global sort keeps the 40 best
    # from the coarsest levels (P6, then P5, P4); a per-level top-N would keep P2 / P3 boxes
    rng = np.random.RandomState(5)
    probs, deltas, im_info = random_inputs(rng)
    for l, p in enumerate(probs):
        p[:, 3:] = 0.1 * (l + 1) + 0.001 * rng.rand(*p[:, 3:].shape)
        p[:, :3] = 1 - p[:, 3:]
    rois, scores = pyramid_proposal_numpy(probs, deltas, im_info, STRIDES, (8,), (0.5, 1, 2),
                                          12000, 40, 0.7, 0)
    assert np.all(np.diff(scores[:, 0]) <= 0)
    assert scores.max() >= 0.5 and scores.min() >= 0.3  # nothing from P2 (0.1) or P3 (0.2)
    np.random.seed(1)
    ref_rois, _ = ref_pyramid_proposal(probs, deltas, im_info[0], 12000, 40, 0.7, 0)
    np.testing.assert_array_equal(rois, ref_rois)


def test_min_size_filter():
    rng = np.random.RandomState(8)
    probs, deltas, im_info = random_inputs(rng)
    im_info[0, 2] = 1.5
    np.random.seed(3)
    ref_rois, ref_scores = ref_pyramid_proposal(probs, deltas, im_info[0], 3000, 500, 0.7, 16)
    np.random.seed(3)
    rois, scores = pyramid_proposal_numpy(probs, deltas, im_info, STRIDES, (8,), (0.5, 1, 2),
                                          3000, 500, 0.7, 16)
    np.testing.assert_array_equal(rois, ref_rois)
    w = rois[:, 3] - rois[:, 1] + 1
    assert w.min() >= 24


def test_custom_op_symbol():
    rng = np.random.RandomState(2)
    probs, deltas, im_info = random_inputs(rng)
    names = ['rpn_cls_prob_stride%d' % s for s in STRIDES] + \
        ['rpn_bbox_pred_stride%d' % s for s in STRIDES]
    kwargs = {n: mx.sym.var(n) for n in names}
    sym = mx.sym.Custom(op_type='pyramid_proposal', name='rois', im_info=mx.sym.var('im_info'),
                        feat_stride=(4, 8, 16, 32, 64), scales=(8,), ratios=(0.5, 1, 2),
                        rpn_pre_nms_top_n=12000, rpn_post_nms_top_n=2000, threshold=0.7,
                        rpn_min_size=0, output_score=True, **kwargs)
    assert sym.list_arguments() == names + ['im_info']
    _, out_shapes, _ = sym.infer_shape(**{n: a.shape for n, a in zip(names, probs + deltas)},
                                       im_info=(1, 3))
    assert out_shapes == [(2000, 5), (2000, 1)]
    arrays = {n: mx.nd.array(a) for n, a in zip(names, probs + deltas)}
    np.random.seed(9)
    rois, scores = sym.eval(im_info=mx.nd.array(im_info), **arrays)
    np.random.seed(9)
    ref_rois, ref_scores = ref_pyramid_proposal(probs, deltas, im_info[0], 12000, 2000, 0.7, 0)
    np.testing.assert_array_equal(rois.asnumpy(), ref_rois)
    np.testing.assert_array_equal(scores.asnumpy(), ref_scores)


def test_bad_arguments():
    rng = np.random.RandomState(2)
    probs, deltas, im_info = random_inputs(rng, levels=4)
    with pytest.raises(ValueError, match='5 strides but 4 score maps'):
        pyramid_proposal_numpy(probs, deltas, im_info, STRIDES)
    sym = mx.sym.Custom(op_type='pyramid_proposal', rpn_post_nms_top_n=0,
                        **{'rpn_cls_prob_stride%d' % s: mx.sym.var('c%d' % s) for s in STRIDES},
                        **{'rpn_bbox_pred_stride%d' % s: mx.sym.var('b%d' % s) for s in STRIDES},
                        im_info=mx.sym.var('im_info'))
    with pytest.raises(mx.base.MXNetError):  # MXNet prints the ValueError below to stderr
        sym.infer_shape(im_info=(1, 3), **{'c%d' % s: (1, 6, 4, 4) for s in STRIDES},
                        **{'b%d' % s: (1, 12, 4, 4) for s in STRIDES})
    with pytest.raises(ValueError, match='rpn_post_nms_top_n must be positive, got 0'):
        PyramidProposalProp(rpn_post_nms_top_n='0').infer_shape([(1, 6, 4, 4)] * 10 + [(1, 3)])
    with pytest.raises(ValueError, match='feat_stride must hold positive strides'):
        PyramidProposalProp(feat_stride='(4, 0)').infer_shape([(1, 6, 4, 4)] * 4 + [(1, 3)])
