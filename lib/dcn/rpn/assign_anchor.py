"""RPN training targets: label, regression target and weight for every anchor.

For a feature map of shape (H, W) and A anchors per position the anchors are
enumerated position-major, anchor-minor (index = (h * W + w) * A + a), exactly
as the RPN head lays out its predictions once transposed to (H, W, A).  The
returned arrays use the layout the training symbol consumes:

* ``label``          (1, A * H * W) in (A, H, W) order, i.e. the order of
  ``rpn_cls_score`` reshaped to (N, 2, A * H, W): 1 foreground, 0 background,
  -1 ignored;
* ``bbox_target``    (1, 4 * A, H, W), anchor-major then (dx, dy, dw, dh);
* ``bbox_weight``    (1, 4 * A, H, W), ``TRAIN.RPN_BBOX_WEIGHTS`` on
  foreground anchors and zero elsewhere.
"""
import numpy as np

from dcn.bbox import bbox_overlaps, bbox_transform
from dcn.config import original_quirks

__all__ = ['assign_anchor', 'assign_pyramid_anchor', 'shifted_anchors']


def _generate_anchors(**kwargs):
    # resolved at call time: dcn.rpn imports this module from its __init__
    import dcn.rpn as rpn
    gen = getattr(rpn, 'generate_anchors', None)
    if gen is not None and not callable(gen):
        gen = getattr(gen, 'generate_anchors')
    if gen is None:
        from dcn.rpn.generate_anchor import generate_anchors as gen
    return gen(**kwargs)


def shifted_anchors(feat_height, feat_width, feat_stride, scales, ratios):
    """All anchors of a (feat_height, feat_width) map, shape (H * W * A, 4), and A.

    Row (h * W + w) * A + a is base anchor ``a`` shifted to position (h, w).
    """
    base = _generate_anchors(base_size=feat_stride, ratios=np.array(ratios, dtype=np.float64),
                            scales=np.array(scales, dtype=np.float64))
    base = np.asarray(base, dtype=np.float32).reshape(-1, 4)
    shift_x = np.arange(feat_width, dtype=np.float32) * feat_stride
    shift_y = np.arange(feat_height, dtype=np.float32) * feat_stride
    sx, sy = np.meshgrid(shift_x, shift_y)
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
    anchors = base[np.newaxis, :, :] + shifts[:, np.newaxis, :]
    return anchors.reshape(-1, 4).astype(np.float32), base.shape[0]


def _unmap(data, count, inds, fill):
    """Scatter rows of ``data`` (for the subset ``inds``) into an array of ``count`` rows."""
    if data.ndim == 1:
        out = np.full((count,), fill, dtype=np.float32)
        out[inds] = data
    else:
        out = np.full((count,) + data.shape[1:], fill, dtype=np.float32)
        out[inds, :] = data
    return out


def _check_inputs(feat_shape, gt_boxes, im_info):
    if len(feat_shape) < 2:
        raise ValueError('assign_anchor: feat_shape must end with (height, width), got %r'
                         % (tuple(feat_shape),))
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32)
    if gt_boxes.size == 0:
        gt_boxes = np.zeros((0, 5), dtype=np.float32)
    if gt_boxes.ndim != 2 or gt_boxes.shape[1] < 4:
        raise ValueError('assign_anchor: gt_boxes must have shape (K, 4) or (K, 5), got %r'
                         % (gt_boxes.shape,))
    if not np.all(np.isfinite(gt_boxes)):
        raise ValueError('assign_anchor: gt_boxes contains NaN or infinite values')
    im_info = np.asarray(im_info, dtype=np.float32).ravel()
    if im_info.size < 2:
        raise ValueError('assign_anchor: im_info must hold (height, width[, scale]), got %r'
                         % (im_info,))
    return gt_boxes, im_info


def assign_anchor(feat_shape, gt_boxes, im_info, cfg, feat_stride=16,
                  scales=(8, 16, 32), ratios=(0.5, 1, 2), allowed_border=0, rng=None):
    """Label anchors and compute their regression targets for one image.

    :param feat_shape: shape of ``rpn_cls_score`` (only the last two entries, H and W, are used)
    :param gt_boxes: (K, 5) x1, y1, x2, y2, class in the resized image (rows with a
        class <= 0 are ignored when a fifth column is present)
    :param im_info: (height, width, scale) of the resized image
    :param cfg: configuration; reads ``cfg.TRAIN.RPN_*``
    :param allowed_border: anchors crossing the image border by more than this are ignored
    :param rng: ``numpy.random.RandomState`` used for sampling (default: numpy's global one)
    :return: dict with ``label``, ``bbox_target``, ``bbox_weight`` (see module docstring)
    """
    gt_boxes, im_info = _check_inputs(feat_shape, gt_boxes, im_info)
    feat_height, feat_width = int(feat_shape[-2]), int(feat_shape[-1])
    all_anchors, num_anchors = shifted_anchors(feat_height, feat_width, feat_stride, scales, ratios)
    labels, bbox_targets, bbox_weights = _label_anchors(all_anchors, gt_boxes, im_info, cfg,
                                                        allowed_border, rng)

    labels, bbox_targets, bbox_weights = _layout(labels, bbox_targets, bbox_weights,
                                                 feat_height, feat_width, num_anchors)
    return {'label': np.ascontiguousarray(labels),
            'bbox_target': np.ascontiguousarray(bbox_targets),
            'bbox_weight': np.ascontiguousarray(bbox_weights)}


def _label_anchors(all_anchors, gt_boxes, im_info, cfg, allowed_border, rng):
    """Labels (1 / 0 / -1), regression targets and weights of every row of ``all_anchors``
    (all the anchors of an image, on one or several maps, labelled together)."""
    if gt_boxes.shape[1] >= 5:
        gt_boxes = gt_boxes[gt_boxes[:, 4] > 0]
    rng = np.random if rng is None else rng
    train = cfg.TRAIN
    total = all_anchors.shape[0]

    im_h, im_w = float(im_info[0]), float(im_info[1])
    inds_inside = np.where((all_anchors[:, 0] >= -allowed_border) &
                           (all_anchors[:, 1] >= -allowed_border) &
                           (all_anchors[:, 2] < im_w + allowed_border) &
                           (all_anchors[:, 3] < im_h + allowed_border))[0]
    anchors = all_anchors[inds_inside, :]

    labels = np.full((len(inds_inside),), -1, dtype=np.float32)
    argmax_overlaps = np.zeros((len(inds_inside),), dtype=np.int64)
    if gt_boxes.shape[0] > 0 and len(inds_inside) > 0:
        overlaps = np.asarray(bbox_overlaps(anchors.astype(np.float64),
                                            gt_boxes[:, :4].astype(np.float64)))
        argmax_overlaps = overlaps.argmax(axis=1)
        max_overlaps = overlaps[np.arange(len(inds_inside)), argmax_overlaps]
        gt_max_overlaps = overlaps.max(axis=0)
        # every gt box claims the anchor(s) overlapping it most; a gt box that
        # touches no anchor at all claims nothing (the original: every anchor it misses)
        if not original_quirks(cfg):
            gt_max_overlaps = np.where(gt_max_overlaps > 0, gt_max_overlaps, np.inf)
        gt_argmax_overlaps = np.where(overlaps == gt_max_overlaps[np.newaxis, :])[0]

        if not train.RPN_CLOBBER_POSITIVES:
            labels[max_overlaps < train.RPN_NEGATIVE_OVERLAP] = 0
        labels[gt_argmax_overlaps] = 1
        labels[max_overlaps >= train.RPN_POSITIVE_OVERLAP] = 1
        if train.RPN_CLOBBER_POSITIVES:
            labels[max_overlaps < train.RPN_NEGATIVE_OVERLAP] = 0
    else:
        labels[:] = 0

    batch_size = int(train.RPN_BATCH_SIZE)
    if batch_size > 0:
        num_fg = int(train.RPN_FG_FRACTION * batch_size)
        fg_inds = np.where(labels == 1)[0]
        if len(fg_inds) > num_fg:
            labels[rng.choice(fg_inds, size=len(fg_inds) - num_fg, replace=False)] = -1
        num_bg = batch_size - int(np.sum(labels == 1))
        bg_inds = np.where(labels == 0)[0]
        if len(bg_inds) > num_bg:
            labels[rng.choice(bg_inds, size=len(bg_inds) - num_bg, replace=False)] = -1

    bbox_targets = np.zeros((len(inds_inside), 4), dtype=np.float32)
    if gt_boxes.shape[0] > 0 and len(inds_inside) > 0:
        bbox_targets[:] = bbox_transform(anchors, gt_boxes[argmax_overlaps, :4])
    bbox_weights = np.zeros((len(inds_inside), 4), dtype=np.float32)
    bbox_weights[labels == 1, :] = np.asarray(train.RPN_BBOX_WEIGHTS, dtype=np.float32)

    labels = _unmap(labels, total, inds_inside, fill=-1)
    bbox_targets = _unmap(bbox_targets, total, inds_inside, fill=0)
    bbox_weights = _unmap(bbox_weights, total, inds_inside, fill=0)

    return labels, bbox_targets, bbox_weights


def _layout(labels, bbox_targets, bbox_weights, feat_height, feat_width, num_anchors):
    A = num_anchors
    labels = labels.reshape((1, feat_height, feat_width, A)).transpose(0, 3, 1, 2)
    labels = labels.reshape((1, A * feat_height * feat_width))
    bbox_targets = bbox_targets.reshape((1, feat_height, feat_width, A * 4)).transpose(0, 3, 1, 2)
    bbox_weights = bbox_weights.reshape((1, feat_height, feat_width, A * 4)).transpose(0, 3, 1, 2)
    return labels, bbox_targets, bbox_weights


def assign_pyramid_anchor(feat_shapes, gt_boxes, im_info, cfg, feat_strides=(4, 8, 16, 32, 64),
                          scales=(8,), ratios=(0.5, 1, 2), allowed_border=float('inf'),
                          rng=None):
    """Anchor targets of a feature pyramid for one image, as the original's
    ``assign_pyramid_anchor``: the anchors of every level (base size = the level's stride)
    are labelled jointly (overlaps with the gt boxes over the union of the levels, one
    sample of ``RPN_BATCH_SIZE``), then laid out per level as (A, H, W) and concatenated in
    level order: ``label`` (1, sum A*H*W), ``bbox_target`` / ``bbox_weight`` (1, 4A, sum H*W).
    The original's FPN loader passes an infinite ``allowed_border`` (every anchor counts).
    """
    if len(feat_shapes) != len(feat_strides) or not feat_shapes:
        raise ValueError('assign_pyramid_anchor: %d feature shapes for %d strides'
                         % (len(feat_shapes), len(feat_strides)))
    gt_boxes, im_info = _check_inputs(feat_shapes[0], gt_boxes, im_info)
    levels, anchors = [], []
    for shape, stride in zip(feat_shapes, feat_strides):
        _check_inputs(shape, gt_boxes, im_info)
        h, w = int(shape[-2]), int(shape[-1])
        a, num = shifted_anchors(h, w, int(stride), scales, ratios)
        levels.append((h, w, num, a.shape[0]))
        anchors.append(a)
    labels, targets, weights = _label_anchors(np.vstack(anchors), gt_boxes, im_info, cfg,
                                              allowed_border, rng)
    out = {'label': [], 'bbox_target': [], 'bbox_weight': []}
    start = 0
    for h, w, num, count in levels:
        lab, tgt, wgt = _layout(labels[start:start + count], targets[start:start + count],
                                weights[start:start + count], h, w, num)
        out['label'].append(lab)
        out['bbox_target'].append(tgt.reshape((1, 4 * num, h * w)))
        out['bbox_weight'].append(wgt.reshape((1, 4 * num, h * w)))
        start += count
    return {'label': np.ascontiguousarray(np.concatenate(out['label'], axis=1)),
            'bbox_target': np.ascontiguousarray(np.concatenate(out['bbox_target'], axis=2)),
            'bbox_weight': np.ascontiguousarray(np.concatenate(out['bbox_weight'], axis=2))}
