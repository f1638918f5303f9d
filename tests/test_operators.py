"""Training-graph CustomOps against independent numpy computations."""
import mxnet as mx
import numpy as np
import pytest

import dcn.layers as ops
from dcn.config import default_config
from dcn.rpn import generate_anchors


def _run(sym, **inputs):
    args = {k: mx.nd.array(v) for k, v in inputs.items()}
    exe = sym.bind(mx.cpu(), args)
    return [o.asnumpy() for o in exe.forward(is_train=True)]


def _ref_nms(dets, thresh):
    """Greedy NMS in the original's order: ``scores.argsort()[::-1]`` of the float32 dets."""
    dets = dets.astype(np.float32)
    x1, y1, x2, y2, s = dets.T.astype(np.float64)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = list(dets[:, 4].argsort()[::-1])
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            iw = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]) + 1)
            ih = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]) + 1)
            inter = iw * ih
            if inter / (areas[i] + areas[j] - inter) <= thresh:
                rest.append(j)
        order = rest
    return keep


def _ref_proposal(cls_prob, deltas, im_info, stride, scales, ratios, pre, post, thresh, min_size):
    """Straightforward per-anchor loops; sorting as the original (``argsort()[::-1]`` of the
    float32 scores in (h, w, a) order, again inside the NMS)."""
    base = np.asarray(generate_anchors(base_size=stride, ratios=np.array(ratios),
                                       scales=np.array(scales)), np.float64)
    A = base.shape[0]
    h = min(int(im_info[0] / stride), cls_prob.shape[1])
    w = min(int(im_info[1] / stride), cls_prob.shape[2])
    boxes, scores = [], []
    for y in range(h):
        for x in range(w):
            for a in range(A):
                an = base[a] + np.array([x, y, x, y]) * stride
                aw, ah = an[2] - an[0] + 1, an[3] - an[1] + 1
                cx, cy = an[0] + 0.5 * (aw - 1), an[1] + 0.5 * (ah - 1)
                dx, dy, dw, dh = deltas[4 * a:4 * a + 4, y, x]
                pcx, pcy = dx * aw + cx, dy * ah + cy
                pw, ph = np.exp(dw) * aw, np.exp(dh) * ah
                b = np.array([pcx - 0.5 * (pw - 1), pcy - 0.5 * (ph - 1),
                              pcx + 0.5 * (pw - 1), pcy + 0.5 * (ph - 1)])
                b[0::2] = np.clip(b[0::2], 0, im_info[1] - 1)
                b[1::2] = np.clip(b[1::2], 0, im_info[0] - 1)
                if b[2] - b[0] + 1 >= min_size * im_info[2] and b[3] - b[1] + 1 >= min_size * im_info[2]:
                    boxes.append(b)
                    scores.append(cls_prob[A + a, y, x])
    boxes, scores = np.array(boxes), np.array(scores, dtype=np.float32)
    order = scores.argsort()[::-1][:pre]
    boxes, scores = boxes[order], scores[order]
    keep = _ref_nms(np.hstack([boxes, scores[:, None]]), thresh)[:post]
    return boxes[keep], scores[keep]


@pytest.mark.parametrize('seed', [0, 1])
def test_proposal_matches_reference(seed):
    rng = np.random.RandomState(seed)
    A, H, W, post = 9, 7, 9, 40
    cls = rng.rand(2, 2 * A, H, W).astype(np.float32)
    deltas = (rng.randn(2, 4 * A, H, W) * 0.2).astype(np.float32)
    im_info = np.array([[112, 144, 1.0], [90, 120, 0.5]], np.float32)
    sym = mx.sym.Custom(cls_prob=mx.sym.var('c'), bbox_pred=mx.sym.var('b'),
                        im_info=mx.sym.var('i'), op_type='proposal', output_score='True',
                        feat_stride='16', scales='(8,16,32)', ratios='(0.5,1,2)',
                        rpn_pre_nms_top_n='200', rpn_post_nms_top_n=str(post),
                        threshold='0.7', rpn_min_size='16')
    rois, scores = _run(sym, c=cls, b=deltas, i=im_info)
    assert rois.shape == (2 * post, 5) and scores.shape == (2 * post, 1)
    for b in range(2):
        ref_boxes, ref_scores = _ref_proposal(cls[b], deltas[b], im_info[b], 16, (8, 16, 32),
                                              (0.5, 1, 2), 200, post, 0.7, 16)
        got = rois[b * post:(b + 1) * post]
        assert np.all(got[:, 0] == b)
        n = len(ref_boxes)
        np.testing.assert_allclose(got[:n, 1:], ref_boxes, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(scores[b * post:b * post + n, 0], ref_scores, rtol=1e-6)
        if n < post:  # padded by repeating the kept proposals
            np.testing.assert_allclose(got[n:, 1:], np.resize(ref_boxes, (post - n, 4)),
                                       rtol=1e-4, atol=1e-2)


def test_proposal_equal_scores_in_the_original_order():
    # a confident RPN saturates the float32 softmax at exactly 1.0: which of the tied,
    # overlapping anchors survive NMS depends on the order the original sorts them in
    A, H, W, post = 9, 6, 8, 60
    cls = np.zeros((1, 2 * A, H, W), np.float32)
    rng = np.random.RandomState(7)
    cls[0, A:] = np.where(rng.rand(A, H, W) < 0.6, 1.0, rng.choice([0.25, 0.5], (A, H, W)))
    cls[0, :A] = 1 - cls[0, A:]
    deltas = np.zeros((1, 4 * A, H, W), np.float32)
    im_info = np.array([[H * 16, W * 16, 1.0]], np.float32)
    sym = mx.sym.Custom(cls_prob=mx.sym.var('c'), bbox_pred=mx.sym.var('b'),
                        im_info=mx.sym.var('i'), op_type='proposal', output_score='True',
                        feat_stride='16', scales='(2,4,8)', ratios='(0.5,1,2)',
                        rpn_pre_nms_top_n='300', rpn_post_nms_top_n=str(post),
                        threshold='0.7', rpn_min_size='0')
    rois, scores = _run(sym, c=cls, b=deltas, i=im_info)
    ref_boxes, ref_scores = _ref_proposal(cls[0], deltas[0], im_info[0], 16, (2, 4, 8),
                                          (0.5, 1, 2), 300, post, 0.7, 0)
    n = len(ref_boxes)
    assert n > 20 and np.sum(ref_scores == 1.0) > 10
    np.testing.assert_array_equal(rois[:n, 1:], ref_boxes.astype(np.float32))
    np.testing.assert_array_equal(scores[:n, 0], ref_scores)
    # the stable order (ties in anchor order) would have kept other boxes
    stable = ref_boxes.copy()
    base = np.asarray(generate_anchors(base_size=16, ratios=np.array((0.5, 1, 2)),
                                       scales=np.array((2, 4, 8))), np.float64)
    every = np.array([base[a] + np.array([x, y, x, y]) * 16 for y in range(H)
                      for x in range(W) for a in range(A)])
    every[:, 0::2] = np.clip(every[:, 0::2], 0, W * 16 - 1)
    every[:, 1::2] = np.clip(every[:, 1::2], 0, H * 16 - 1)
    fg = cls[0, A:].transpose(1, 2, 0).reshape(-1)
    order = np.argsort(-fg, kind='stable')[:300]
    dets = np.hstack([every[order], fg[order, None]]).astype(np.float32)
    keep = [int(order[k]) for k in _stable_nms(dets, 0.7)][:post]
    stable = every[keep]
    assert not np.array_equal(stable[:n], ref_boxes)


def _stable_nms(dets, thresh):
    x1, y1, x2, y2, s = dets.T.astype(np.float64)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = list(np.argsort(-dets[:, 4], kind='stable')), []
    while order:
        i = order.pop(0)
        keep.append(i)
        iw = np.maximum(0, np.minimum(x2[i], x2[order]) - np.maximum(x1[i], x1[order]) + 1)
        ih = np.maximum(0, np.minimum(y2[i], y2[order]) - np.maximum(y1[i], y1[order]) + 1)
        ovr = iw * ih / (areas[i] + areas[order] - iw * ih)
        order = [j for j, o in zip(order, ovr) if o < thresh]
    return keep


def test_proposal_builder_and_zero_grad():
    cfg = default_config()
    cfg.TEST.RPN_POST_NMS_TOP_N = 10
    sym = ops.rpn_proposal(mx.sym.var('c'), mx.sym.var('b'), mx.sym.var('i'), cfg, False)
    assert sym.list_outputs() == ['rois_output']
    rng = np.random.RandomState(0)
    args = {'c': mx.nd.array(rng.rand(1, 18, 4, 4)), 'b': mx.nd.zeros((1, 36, 4, 4)),
            'i': mx.nd.array([[64, 64, 1]])}
    grads = {k: mx.nd.ones(v.shape) for k, v in args.items()}
    exe = sym.bind(mx.cpu(), args, args_grad=grads)
    exe.forward(is_train=True)
    exe.backward([mx.nd.ones((10, 5))])
    assert all(np.all(g.asnumpy() == 0) for g in grads.values())
    cfg.TEST.CXX_PROPOSAL = True
    cxx = ops.rpn_proposal(mx.sym.var('c'), mx.sym.var('b'), mx.sym.var('i'), cfg, False)
    out = cxx.bind(mx.cpu(), args).forward()[0].asnumpy()
    assert out.shape == (10, 5)


def _target_cfg():
    cfg = default_config()
    cfg.TRAIN.BATCH_ROIS = 64
    cfg.TRAIN.FG_FRACTION = 0.25
    cfg.CLASS_AGNOSTIC = False
    return cfg


def test_proposal_target_sampling_and_normalisation():
    cfg = _target_cfg()
    rng = np.random.RandomState(0)
    gt = np.array([[[20, 20, 80, 90, 3], [100, 40, 180, 150, 1], [-1, -1, -1, -1, -1]]],
                  np.float32)
    rois = []
    for _ in range(300):  # jittered copies of the gts (foreground) and random boxes
        g = gt[0, rng.randint(2), :4]
        rois.append(g + rng.uniform(-6, 6, 4))
        x, y = rng.uniform(0, 150, 2)
        rois.append([x, y, x + rng.uniform(10, 60), y + rng.uniform(10, 60)])
    rois = np.hstack([np.zeros((600, 1)), np.array(rois)]).astype(np.float32)
    num_classes = 5
    r, label, target, weight = ops.proposal_target(mx.sym.var('rois'), mx.sym.var('gt'), cfg,
                                                   num_classes)
    out = _run(mx.sym.Group([r, label, target, weight]), rois=rois, gt=gt)
    s_rois, s_label, s_target, s_weight = out
    assert s_rois.shape == (64, 5) and s_target.shape == (64, 4 * num_classes)
    assert np.sum(s_label > 0) == 16  # FG_FRACTION * BATCH_ROIS
    assert np.sum(s_label == 0) == 48
    gtb = gt[0, :2]
    for i in range(64):
        b = s_rois[i, 1:]
        iw = np.minimum(b[2], gtb[:, 2]) - np.maximum(b[0], gtb[:, 0]) + 1
        ih = np.minimum(b[3], gtb[:, 3]) - np.maximum(b[1], gtb[:, 1]) + 1
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        union = (b[2] - b[0] + 1) * (b[3] - b[1] + 1) + \
            (gtb[:, 2] - gtb[:, 0] + 1) * (gtb[:, 3] - gtb[:, 1] + 1) - inter
        iou = inter / union
        j = np.argmax(iou)
        if s_label[i] > 0:
            assert iou[j] >= 0.5
            assert s_label[i] == gt[0, j, 4]
            c = int(s_label[i])
            g = gtb[j]
            ew, eh = b[2] - b[0] + 1, b[3] - b[1] + 1
            gw, gh = g[2] - g[0] + 1, g[3] - g[1] + 1
            raw = np.array([((g[0] + 0.5 * (gw - 1)) - (b[0] + 0.5 * (ew - 1))) / ew,
                            ((g[1] + 0.5 * (gh - 1)) - (b[1] + 0.5 * (eh - 1))) / eh,
                            np.log(gw / ew), np.log(gh / eh)])
            expect = raw / np.array([0.1, 0.1, 0.2, 0.2])
            np.testing.assert_allclose(s_target[i, 4 * c:4 * c + 4], expect, rtol=1e-3, atol=1e-4)
            assert np.all(s_weight[i, 4 * c:4 * c + 4] == 1)
            assert np.sum(s_weight[i]) == 4
        else:
            assert iou[j] < 0.5
            assert np.all(s_weight[i] == 0) and np.all(s_target[i] == 0)


def _iou(boxes, gts):
    """(R, G) IoU, legacy +1 pixel convention."""
    iw = np.minimum(boxes[:, None, 2], gts[None, :, 2]) - np.maximum(boxes[:, None, 0], gts[None, :, 0]) + 1
    ih = np.minimum(boxes[:, None, 3], gts[None, :, 3]) - np.maximum(boxes[:, None, 1], gts[None, :, 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area(boxes)[:, None] + area(gts)[None, :] - inter)


def _all_rois_case(rng, gt_boxes, num_fg, num_bg):
    """Proposals: ``num_fg`` jittered copies of the gts (IoU >= 0.5), ``num_bg`` far boxes."""
    fg = gt_boxes[rng.randint(len(gt_boxes), size=num_fg), :4] + rng.uniform(-3, 3, (num_fg, 4))
    xy = rng.uniform(400, 600, (num_bg, 2))
    bg = np.hstack([xy, xy + rng.uniform(10, 60, (num_bg, 2))])
    boxes = rng.permutation(np.vstack([fg, bg]))
    return boxes.astype(np.float32)


def test_proposal_target_all_rois_is_the_original_rule():
    # TRAIN.BATCH_ROIS -1 (every R-FCN config): the original keeps every proposal and every
    # gt box once, rois_per_image = R + G and fg_rois_per_image = rois_per_image (no cap)
    cfg = _target_cfg()
    cfg.CLASS_AGNOSTIC = True
    cfg.TRAIN.BATCH_ROIS = -1
    assert cfg.TRAIN.FG_FRACTION == 0.25  # the configs' value: it must not cap anything
    rng = np.random.RandomState(5)
    gt = np.array([[30, 40, 130, 160, 2]], np.float32)
    boxes = _all_rois_case(rng, gt, 150, 150)
    fg_expected = int(np.sum(_iou(boxes, gt[:, :4]).max(1) >= 0.5)) + 1  # + the gt itself
    assert fg_expected == 151
    rois = np.hstack([np.zeros((300, 1), np.float32), boxes])
    out = _run(mx.sym.Group(list(ops.proposal_target(mx.sym.var('rois'), mx.sym.var('gt'), cfg,
                                                       3))), rois=rois, gt=gt[None])
    s_rois, s_label, s_target, s_weight = out
    assert s_rois.shape == (301, 5)
    assert np.sum(s_label > 0) == 151 and np.sum(s_label == 0) == 150
    assert np.all(s_label[:151] > 0)  # foreground first, as the original
    # every candidate exactly once: the 300 proposals and the gt, no repeated background
    candidates = np.vstack([boxes, gt[:, :4]])
    assert len(np.unique(s_rois[:, 1:], axis=0)) == 301
    np.testing.assert_array_equal(np.sort(s_rois[:, 1:].view('f4,f4,f4,f4'), axis=0),
                                  np.sort(candidates.view('f4,f4,f4,f4'), axis=0))
    assert np.all(s_weight[s_label > 0][:, 4:8] == 1) and np.all(s_weight[s_label == 0] == 0)


def test_proposal_target_all_rois_counts_real_gt_boxes():
    # two images, 3 and 1 real gt boxes (the second padded with -1 rows): per image the
    # R_b + G_b candidates once; the slots of the padding rows are ignored (label -1)
    cfg = _target_cfg()
    cfg.TRAIN.BATCH_ROIS = -1
    cfg.TRAIN.BATCH_IMAGES = 2
    rng = np.random.RandomState(6)
    gt = np.full((2, 3, 5), -1, np.float32)
    gt[0] = [[20, 20, 80, 90, 3], [100, 40, 180, 150, 1], [200, 200, 260, 300, 2]]
    gt[1, 0] = [50, 60, 150, 170, 4]
    per_image = 40
    rois = []
    for b in range(2):
        real = gt[b][gt[b, :, 4] > 0]
        boxes = _all_rois_case(rng, real, 15, per_image - 15)
        rois.append(np.hstack([np.full((per_image, 1), b, np.float32), boxes]))
    rois = np.vstack(rois)
    out = _run(mx.sym.Group(list(ops.proposal_target(mx.sym.var('rois'), mx.sym.var('gt'), cfg,
                                                       5))), rois=rois, gt=gt)
    s_rois, s_label, s_target, s_weight = out
    slots = per_image + 3
    assert s_rois.shape == (2 * slots, 5)
    for b, num_gt in ((0, 3), (1, 1)):
        lab = s_label[b * slots:(b + 1) * slots]
        r = s_rois[b * slots:(b + 1) * slots]
        assert np.all(r[:, 0] == b)
        real = gt[b][gt[b, :, 4] > 0]
        boxes = rois[rois[:, 0] == b, 1:]
        fg_expected = int(np.sum(_iou(boxes, real[:, :4]).max(1) >= 0.5)) + num_gt
        assert np.sum(lab > 0) == fg_expected
        assert np.sum(lab >= 0) == per_image + num_gt  # every candidate, once
        assert len(np.unique(r[lab >= 0, 1:], axis=0)) == per_image + num_gt
        ignored = lab < 0
        assert np.sum(ignored) == 3 - num_gt
        assert np.all(s_weight[b * slots:(b + 1) * slots][ignored] == 0)
        assert np.all(s_target[b * slots:(b + 1) * slots][ignored] == 0)


def test_ohem_keeps_highest_loss():
    rng = np.random.RandomState(0)
    R, C = 20, 4
    cls_score = rng.randn(R, C).astype(np.float32)
    bbox_pred = rng.randn(R, 8).astype(np.float32)
    labels = rng.randint(0, C, R).astype(np.float32)
    targets = rng.randn(R, 8).astype(np.float32)
    weights = np.zeros((R, 8), np.float32)
    weights[labels > 0, 4:8] = 1
    cfg = default_config()
    cfg.TRAIN.BATCH_ROIS_OHEM = 6
    lo, wo = ops.box_annotator_ohem(mx.sym.var('s'), mx.sym.var('p'), mx.sym.var('l'),
                                    mx.sym.var('t'), mx.sym.var('w'), cfg, C, 2)
    labels_ohem, weights_ohem = _run(mx.sym.Group([lo, wo]), s=cls_score, p=bbox_pred, l=labels,
                                     t=targets, w=weights)
    # independent per-RoI loss
    prob = np.exp(cls_score) / np.exp(cls_score).sum(1, keepdims=True)
    d = np.abs(bbox_pred - targets)
    sl1 = np.where(d < 1, 0.5 * d ** 2, d - 0.5)
    loss = -np.log(prob[np.arange(R), labels.astype(int)]) + (weights * sl1).sum(1)
    top = set(np.argsort(-loss)[:6])
    kept = set(np.where(labels_ohem != -1)[0])
    assert kept == top
    for i in range(R):
        if i in top:
            assert labels_ohem[i] == labels[i]
            np.testing.assert_array_equal(weights_ohem[i], weights[i])
        else:
            assert np.all(weights_ohem[i] == 0)


def test_bad_parameters():
    cfg = default_config()
    cfg.TEST.RPN_POST_NMS_TOP_N = 0
    with pytest.raises(ValueError, match='RPN_POST_NMS_TOP_N'):
        ops.rpn_proposal(mx.sym.var('c'), mx.sym.var('b'), mx.sym.var('i'), cfg, False)
    cfg.TRAIN.BATCH_ROIS_OHEM = 0
    with pytest.raises(ValueError, match='BATCH_ROIS_OHEM'):
        ops.box_annotator_ohem(*[mx.sym.var(n) for n in 'abcde'], cfg, 3, 2)
    # a bad argument given straight to mx.sym.Custom is an MXNetError, not a crash
    sym = mx.sym.Custom(cls_prob=mx.sym.var('c'), bbox_pred=mx.sym.var('b'),
                        im_info=mx.sym.var('i'), op_type='proposal', scales='(8,x)')
    with pytest.raises(mx.base.MXNetError):
        sym.infer_shape(c=(1, 18, 4, 4), b=(1, 36, 4, 4), i=(1, 3))
    # bad data at run time: error naming the problem, process survives
    g = mx.sym.Group(list(ops.proposal_target(mx.sym.var('rois'), mx.sym.var('gt'),
                                              default_config(), 3)))
    exe = g.bind(mx.cpu(), {'rois': mx.nd.array([[0, 1, 1, 20, 20]]),
                            'gt': mx.nd.array([[[1, 1, 20, 20, 7]]])})
    with pytest.raises(mx.base.MXNetError):
        exe.forward()[0].asnumpy()
