"""CustomOp ``proposal_target``: sample RoIs for the R-CNN head and build their targets.

Inputs: ``rois`` (R, 5) (batch index, x1, y1, x2, y2) and ``gt_boxes`` (N, G, 5)
(x1, y1, x2, y2, class; rows with class <= 0 are padding).
Outputs, with P = RoI slots per image (``batch_rois // batch_images``, or
R / N + G when ``batch_rois`` is -1):
``rois_output`` (N * P, 5), ``label`` (N * P,), ``bbox_target`` and
``bbox_weight`` (N * P, 4 * num_reg_classes).

Per image the ground-truth boxes are appended to the proposals; RoIs with IoU
>= ``fg_thresh`` with some gt are foreground, RoIs with IoU in
[``bg_thresh_lo``, ``bg_thresh_hi``) background; the sample is filled up to its
size with further RoIs of IoU < ``fg_thresh``, labelled background (foreground
RoIs left out by the cap are never labelled background).

* ``batch_rois`` > 0 (sampling): ``batch_rois / batch_images`` RoIs per image, at
  most ``round(fg_fraction * that)`` foreground, sampled.
* ``batch_rois`` -1 (the original's rule for OHEM): every proposal and every real gt
  box of the image exactly once, with no foreground cap (``R_b + G_b`` RoIs, all
  foreground RoIs kept).  The output has a fixed ``R / N + G`` slots per image, G
  being the padded gt count of the batch; the slots of the padding gt rows are
  labelled -1 (ignored by the softmax and by OHEM) with zero targets and weights.

Targets are (dx, dy, dw, dh) to the assigned gt, normalised by ``bbox_means`` /
``bbox_stds`` when ``normalize`` is set, written in the 4 columns of the RoI's
class (column block 1 for every foreground RoI when ``num_reg_classes`` is 2,
i.e. class-agnostic regression), with ``bbox_weights`` as weight.
"""
import mxnet as mx
import numpy as np

from dcn.bbox import bbox_overlaps, bbox_transform
from dcn.layers._common import check_error, parse_bool, parse_floats, zero_grads

__all__ = ['sample_rois', 'ProposalTargetOperator', 'ProposalTargetProp']


def _choice(rng, pool, size):
    if size <= 0 or len(pool) == 0:
        return np.zeros((0,), dtype=np.int64)
    return rng.choice(pool, size=size, replace=size > len(pool))


def sample_rois(rois, gt_boxes, num_classes, rois_per_image, fg_rois_per_image, rng, params):
    """Sample the RoIs of one image.

    :param rois: (R, 5) proposals of this image (batch column included)
    :param gt_boxes: (G, 5) valid ground truth of this image
    :param params: dict with fg_thresh, bg_thresh_hi, bg_thresh_lo, num_reg_classes,
        normalize, means, stds, bbox_weights, original_gaps (fill the sample as the original:
        random RoIs of any overlap, without repeats within a draw, all labelled background)
    :return: rois (P, 5), labels (P,), bbox_targets (P, 4K), bbox_weights (P, 4K)
    """
    num_reg = params['num_reg_classes']
    if gt_boxes.shape[0] > 0:
        overlaps = np.asarray(bbox_overlaps(rois[:, 1:].astype(np.float64),
                                            gt_boxes[:, :4].astype(np.float64)))
        gt_assignment = overlaps.argmax(axis=1)
        max_overlaps = overlaps[np.arange(rois.shape[0]), gt_assignment]
        labels = gt_boxes[gt_assignment, 4].astype(np.float32)
    else:
        gt_assignment = np.zeros((rois.shape[0],), dtype=np.int64)
        max_overlaps = np.zeros((rois.shape[0],), dtype=np.float32)
        labels = np.zeros((rois.shape[0],), dtype=np.float32)

    fg_inds = np.where(max_overlaps >= params['fg_thresh'])[0]
    num_fg = min(fg_rois_per_image, len(fg_inds))
    if len(fg_inds) > num_fg:
        fg_inds = rng.choice(fg_inds, size=num_fg, replace=False)

    bg_inds = np.where((max_overlaps < params['bg_thresh_hi']) &
                       (max_overlaps >= params['bg_thresh_lo']))[0]
    num_bg = min(rois_per_image - num_fg, len(bg_inds))
    if len(bg_inds) > num_bg:
        bg_inds = rng.choice(bg_inds, size=num_bg, replace=False)

    keep = np.concatenate([fg_inds, bg_inds]).astype(np.int64)
    gap = rois_per_image - len(keep)
    if params.get('original_gaps'):
        while len(keep) < rois_per_image:
            draw = min(rois.shape[0], rois_per_image - len(keep))
            keep = np.concatenate([keep, rng.choice(np.arange(rois.shape[0]), size=draw,
                                                    replace=False)]).astype(np.int64)
        gap = 0
    if gap > 0:
        # fill with further background RoIs (IoU < fg_thresh), without repeats when possible;
        # foreground RoIs left out by the fg cap must not come back labelled background
        non_fg = np.where(max_overlaps < params['fg_thresh'])[0]
        rest = np.setdiff1d(non_fg, keep)
        pool = rest if len(rest) >= gap else non_fg
        if len(pool) == 0:  # only foreground RoIs: repeat them, with their labels
            pool = np.arange(rois.shape[0])
        keep = np.concatenate([keep, _choice(rng, pool, gap)]).astype(np.int64)

    labels = labels[keep]
    tail = labels[num_fg:]
    if params.get('original_gaps'):
        tail[:] = 0
    else:
        tail[max_overlaps[keep[num_fg:]] < params['fg_thresh']] = 0
    sampled = rois[keep]

    targets = np.zeros((len(keep), 4), dtype=np.float32)
    if gt_boxes.shape[0] > 0:
        targets = bbox_transform(sampled[:, 1:], gt_boxes[gt_assignment[keep], :4]).astype(np.float32)
        if params['normalize']:
            targets = (targets - params['means']) / params['stds']

    bbox_targets = np.zeros((len(keep), 4 * num_reg), dtype=np.float32)
    bbox_weights = np.zeros((len(keep), 4 * num_reg), dtype=np.float32)
    for i in np.where(labels > 0)[0]:
        cls = 1 if num_reg == 2 else int(labels[i])
        bbox_targets[i, 4 * cls:4 * cls + 4] = targets[i]
        bbox_weights[i, 4 * cls:4 * cls + 4] = params['bbox_weights']
    return sampled.astype(np.float32), labels.astype(np.float32), bbox_targets, bbox_weights


def _ignored_slots(sample, count):
    """``sample`` (rois, labels, bbox_targets, bbox_weights) followed by ``count`` slots
    ignored by the losses: the last RoI repeated, label -1, zero targets and weights."""
    rois, labels, targets, weights = sample
    return (np.vstack((rois, np.repeat(rois[-1:], count, axis=0))),
            np.concatenate((labels, np.full((count,), -1, dtype=labels.dtype))),
            np.vstack((targets, np.zeros((count, targets.shape[1]), dtype=targets.dtype))),
            np.vstack((weights, np.zeros((count, weights.shape[1]), dtype=weights.dtype))))


class ProposalTargetOperator(mx.operator.CustomOp):
    def __init__(self, num_classes, batch_images, rois_per_image, fg_fraction, params, seed):
        super(ProposalTargetOperator, self).__init__()
        self._num_classes = num_classes
        self._batch_images = batch_images
        self._rois_per_image = rois_per_image
        self._fg_fraction = fg_fraction
        self._params = params
        self._rng = np.random.RandomState(seed) if seed >= 0 else np.random

    def forward(self, is_train, req, in_data, out_data, aux):
        all_rois = in_data[0].asnumpy()
        gt_all = in_data[1].asnumpy().reshape((self._batch_images, -1, 5))
        per_image_in = all_rois.shape[0] // self._batch_images
        outs = [[], [], [], []]
        for b in range(self._batch_images):
            rois = all_rois[all_rois[:, 0] == b]
            if rois.shape[0] == 0:  # rois without batch index: split evenly
                rois = all_rois[b * per_image_in:(b + 1) * per_image_in].copy()
                rois[:, 0] = b
            gt = gt_all[b]
            gt = gt[gt[:, 4] > 0]
            if np.any(gt[:, 4] >= self._num_classes):
                raise ValueError('proposal_target: gt class %d >= num_classes %d'
                                 % (int(gt[:, 4].max()), self._num_classes))
            gt_rois = np.hstack((np.full((gt.shape[0], 1), b, dtype=np.float32), gt[:, :4]))
            rois = np.vstack((rois, gt_rois))
            if self._rois_per_image > 0:
                per_image = slots = self._rois_per_image
                fg_per_image = int(np.round(self._fg_fraction * per_image))
            else:
                # every proposal and every real gt box once, no foreground cap
                per_image = fg_per_image = rois.shape[0]
                slots = per_image_in + gt_all.shape[1]
                if per_image > slots:
                    raise ValueError('proposal_target: image %d has %d proposals, more than '
                                     'the %d of its share of the batch' % (
                                         b, per_image - gt.shape[0], per_image_in))
            res = sample_rois(rois, gt, self._num_classes, per_image, fg_per_image,
                              self._rng, self._params)
            if slots > per_image:
                res = _ignored_slots(res, slots - per_image)
            for o, r in zip(outs, res):
                o.append(r)
        for i in range(4):
            self.assign(out_data[i], req[i], np.concatenate(outs[i], axis=0))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        zero_grads(self, req, in_grad)


@mx.operator.register('proposal_target')
class ProposalTargetProp(mx.operator.CustomOpProp):
    def __init__(self, num_classes, batch_images='1', batch_rois='128', fg_fraction='0.25',
                 fg_thresh='0.5', bg_thresh_hi='0.5', bg_thresh_lo='0.0', num_reg_classes='0',
                 normalize='True', bbox_means='(0,0,0,0)', bbox_stds='(0.1,0.1,0.2,0.2)',
                 bbox_weights='(1,1,1,1)', seed='-1', original_gaps='False'):
        super(ProposalTargetProp, self).__init__(need_top_grad=False)
        # argument errors are raised from infer_shape (see ProposalProp)
        self._error = None
        try:
            self._setup(num_classes, batch_images, batch_rois, fg_fraction, fg_thresh,
                        bg_thresh_hi, bg_thresh_lo, num_reg_classes, normalize, bbox_means,
                        bbox_stds, bbox_weights, seed, original_gaps)
        except (ValueError, TypeError) as exc:
            self._error = str(exc)

    def _setup(self, num_classes, batch_images, batch_rois, fg_fraction, fg_thresh, bg_thresh_hi,
               bg_thresh_lo, num_reg_classes, normalize, bbox_means, bbox_stds, bbox_weights,
               seed, original_gaps):
        self._num_classes = int(num_classes)
        self._batch_images = int(batch_images)
        self._batch_rois = int(batch_rois)
        self._fg_fraction = float(fg_fraction)
        num_reg = int(num_reg_classes)
        self._num_reg = num_reg if num_reg > 0 else self._num_classes
        self._seed = int(seed)
        if self._batch_images <= 0:
            raise ValueError('proposal_target: batch_images must be positive')
        if self._batch_rois > 0 and self._batch_rois % self._batch_images != 0:
            raise ValueError('proposal_target: batch_rois (%d) must be a multiple of batch_images '
                             '(%d)' % (self._batch_rois, self._batch_images))
        self._params = {
            'fg_thresh': float(fg_thresh), 'bg_thresh_hi': float(bg_thresh_hi),
            'bg_thresh_lo': float(bg_thresh_lo), 'num_reg_classes': self._num_reg,
            'normalize': parse_bool(normalize), 'original_gaps': parse_bool(original_gaps),
            'means': np.array(parse_floats(bbox_means, 'proposal_target bbox_means'), np.float32),
            'stds': np.array(parse_floats(bbox_stds, 'proposal_target bbox_stds'), np.float32),
            'bbox_weights': np.array(parse_floats(bbox_weights, 'proposal_target bbox_weights'),
                                     np.float32)}
        for key in ('means', 'stds', 'bbox_weights'):
            if self._params[key].shape != (4,):
                raise ValueError('proposal_target: %s must have 4 values' % key)

    def list_arguments(self):
        return ['rois', 'gt_boxes']

    def list_outputs(self):
        return ['rois_output', 'label', 'bbox_target', 'bbox_weight']

    def _rois_per_image(self, rois_shape, gt_shape):
        if self._batch_rois > 0:
            return self._batch_rois // self._batch_images
        gt_per_image = int(np.prod(gt_shape)) // (5 * self._batch_images)
        return rois_shape[0] // self._batch_images + gt_per_image

    def infer_shape(self, in_shape):
        check_error(self)
        rpn_rois_shape, gt_shape = in_shape
        n = self._batch_images * self._rois_per_image(rpn_rois_shape, gt_shape)
        k = 4 * self._num_reg
        return [rpn_rois_shape, gt_shape], [(n, 5), (n,), (n, k), (n, k)], []

    def create_operator(self, ctx, shapes, dtypes):
        check_error(self)
        per_image = self._batch_rois // self._batch_images if self._batch_rois > 0 else -1
        return ProposalTargetOperator(self._num_classes, self._batch_images, per_image,
                                      self._fg_fraction, self._params, self._seed)

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return []
