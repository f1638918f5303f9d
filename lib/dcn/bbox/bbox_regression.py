"""Box-regression targets of a proposal roidb (training the RoI head from precomputed
proposals), as the original's ``bbox_regression``.

:func:`add_bbox_regression_targets` gives every RoI of every entry a target row
``bbox_targets`` (K, 5): class, dx, dy, dw, dh to the ground-truth box it overlaps most,
for the RoIs of overlap >= ``TRAIN.BBOX_REGRESSION_THRESH`` (zero rows otherwise), and
normalises them by per-class means and standard deviations: ``TRAIN.BBOX_MEANS`` /
``BBOX_STDS`` with ``TRAIN.BBOX_NORMALIZATION_PRECOMPUTED``, else computed from the
targets themselves (class-agnostic: one foreground class).
"""
import logging

import numpy as np

from .bbox_transform import bbox_overlaps, bbox_transform

__all__ = ['compute_bbox_regression_targets', 'add_bbox_regression_targets',
           'expand_bbox_regression_targets']

logger = logging.getLogger(__name__)


def compute_bbox_regression_targets(rois, overlaps, labels, cfg):
    """(K, 5) targets: class, then the deltas to the gt RoI (overlap 1) each RoI of
    overlap >= TRAIN.BBOX_REGRESSION_THRESH overlaps most."""
    rois = np.asarray(rois, dtype=np.float64)
    overlaps = np.asarray(overlaps)
    if len(rois) != len(overlaps):
        raise ValueError('bbox regression: %d RoIs but %d overlaps' % (len(rois), len(overlaps)))
    targets = np.zeros((rois.shape[0], 5), dtype=np.float32)
    gt_inds = np.where(overlaps == 1)[0]
    if len(gt_inds) == 0:
        return targets
    ex_inds = np.where(overlaps >= cfg.TRAIN.BBOX_REGRESSION_THRESH)[0]
    ex_gt = np.asarray(bbox_overlaps(rois[ex_inds, :], rois[gt_inds, :]))
    gt_rois = rois[gt_inds[ex_gt.argmax(axis=1)], :]
    targets[ex_inds, 0] = np.asarray(labels)[ex_inds]
    targets[ex_inds, 1:] = bbox_transform(rois[ex_inds, :], gt_rois)
    return targets


def add_bbox_regression_targets(roidb, cfg):
    """Add ``bbox_targets`` (normalised) to every entry of ``roidb`` (which needs
    ``boxes``, ``max_overlaps``, ``max_classes``, ``gt_overlaps``); returns the (means, stds)
    used, each 4 values per regression class (the background's first), flattened."""
    if len(roidb) == 0:
        raise ValueError('add_bbox_regression_targets: the roidb is empty')
    for key in ('boxes', 'max_overlaps', 'max_classes', 'gt_overlaps'):
        if key not in roidb[0]:
            raise ValueError('add_bbox_regression_targets: roidb entries lack %r (a proposal '
                             'roidb is needed)' % key)
    agnostic = bool(cfg.CLASS_AGNOSTIC)
    num_classes = 2 if agnostic else np.asarray(roidb[0]['gt_overlaps']).shape[1]
    for rec in roidb:
        rec['bbox_targets'] = compute_bbox_regression_targets(
            rec['boxes'], rec['max_overlaps'], rec['max_classes'], cfg)

    def _of_class(targets, cls):
        return np.where(targets[:, 0] > 0)[0] if agnostic else \
            np.where(targets[:, 0] == cls)[0]

    if cfg.TRAIN.BBOX_NORMALIZATION_PRECOMPUTED:
        means = np.tile(np.array(cfg.TRAIN.BBOX_MEANS, dtype=np.float64), (num_classes, 1))
        stds = np.tile(np.array(cfg.TRAIN.BBOX_STDS, dtype=np.float64), (num_classes, 1))
    else:
        counts = np.zeros((num_classes, 1)) + 1e-14
        sums = np.zeros((num_classes, 4))
        squared = np.zeros((num_classes, 4))
        for rec in roidb:
            targets = rec['bbox_targets']
            for cls in range(1, num_classes):
                inds = _of_class(targets, cls)
                if inds.size:
                    counts[cls] += inds.size
                    sums[cls] += targets[inds, 1:].sum(axis=0)
                    squared[cls] += (targets[inds, 1:].astype(np.float64) ** 2).sum(axis=0)
        means = sums / counts
        stds = np.sqrt(squared / counts - means ** 2)
        # the original leaves the background row (and any class without targets) at mean 0,
        # std 0; no target is normalised by it, but checkpoints un-normalise (and resuming
        # re-normalises) the whole regression layer with these values: std 1 there
        empty = counts[:, 0] < 1
        means[empty] = 0.0
        stds[empty] = 1.0
        # a component all of whose targets are equal (e.g. a class seen only as its own gt
        # boxes) has std 0, where the original divides by zero: 1 there
        stds[stds <= 1e-12] = 1.0
    logger.info('bbox target means (foreground mean %s), stds (foreground mean %s)',
                np.round(means[1:].mean(axis=0), 4).tolist(),
                np.round(stds[1:].mean(axis=0), 4).tolist())
    for rec in roidb:
        targets = rec['bbox_targets']
        for cls in range(1, num_classes):
            inds = _of_class(targets, cls)
            if inds.size:
                targets[inds, 1:] = (targets[inds, 1:] - means[cls]) / stds[cls]
    return means.ravel().astype(np.float32), stds.ravel().astype(np.float32)


def expand_bbox_regression_targets(bbox_targets_data, num_classes, cfg):
    """(K, 5) targets -> (K, 4 * regression classes) targets and weights
    (``TRAIN.BBOX_WEIGHTS`` in the 4 columns of the RoI's class, column block 1 for every
    foreground RoI when class-agnostic)."""
    classes = bbox_targets_data[:, 0]
    nreg = 2 if cfg.CLASS_AGNOSTIC else num_classes
    targets = np.zeros((classes.size, 4 * nreg), dtype=np.float32)
    weights = np.zeros(targets.shape, dtype=np.float32)
    for i in np.where(classes > 0)[0]:
        start = 4 if cfg.CLASS_AGNOSTIC else int(4 * classes[i])
        targets[i, start:start + 4] = bbox_targets_data[i, 1:]
        weights[i, start:start + 4] = cfg.TRAIN.BBOX_WEIGHTS
    return targets, weights
