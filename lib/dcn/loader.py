"""Data iterators for end-to-end training (:class:`AnchorLoader`) and testing (:class:`TestLoader`).

Batches are assembled by a background thread (images read, resized, anchor
targets computed) and handed over through a bounded queue, so the network
rarely waits for data.  The thread is a daemon, is stopped and joined by
``reset()`` / ``close()`` and never keeps the interpreter alive; an error in
it is re-raised by ``next()`` in the consuming thread.
"""
import logging
import queue
import sys
import threading

import mxnet as mx
import numpy as np

from dcn.config import original_quirks
from dcn.config import get_scales
from dcn.image import get_image, get_train_image, get_train_rec, tensor_vstack
from dcn.rpn.assign_anchor import assign_anchor, assign_pyramid_anchor

__all__ = ['TrainLoaderBase', 'AnchorLoader', 'PyramidAnchorLoader', 'ROILoader', 'TestLoader', 'PrefetchingIter',
           'sample_proposal_rois']

_log = logging.getLogger(__name__)
_STOP = object()


class PrefetchingIter(mx.io.DataIter):
    """Base class: a worker thread builds the numpy batches of one epoch in order.

    Subclasses implement ``_epoch_batches()`` (list of per-batch roidb index
    arrays, called at each reset) and ``_make_batch(indices)`` (dict of numpy
    arrays plus metadata) and ``_to_databatch(batch)``.
    """

    def __init__(self, batch_size, prefetch=2):
        super(PrefetchingIter, self).__init__(batch_size)
        self._prefetch = max(1, int(prefetch))
        self._thread = None
        self._stop_event = threading.Event()
        self._queue = None
        self._batches = []
        self._cursor = 0
        self._peeked = None

    # ---- worker management ------------------------------------------------------------
    def _worker(self, batches, out_queue, stop_event):
        try:
            for indices in batches:
                if stop_event.is_set():
                    return
                item = ('ok', self._make_batch(indices))
                while not stop_event.is_set():
                    try:
                        out_queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException:  # handed to the consumer, re-raised there
            exc_info = sys.exc_info()
            while not stop_event.is_set():
                try:
                    out_queue.put(('error', exc_info), timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _stop_worker(self):
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._thread = None
        self._queue = None
        self._peeked = None

    def _start_worker(self):
        self._stop_worker()
        self._stop_event = threading.Event()
        self._queue = queue.Queue(maxsize=self._prefetch)
        self._thread = threading.Thread(target=self._worker, name=type(self).__name__ + '-prefetch',
                                        args=(list(self._batches), self._queue, self._stop_event))
        self._thread.daemon = True
        self._thread.start()

    def close(self):
        """Stop the prefetching thread (idempotent)."""
        self._stop_worker()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- DataIter protocol ----------------------------------------------------------
    def reset(self):
        self._batches = self._epoch_batches()
        self._cursor = 0
        self._start_worker()

    def __len__(self):
        return len(self._batches)

    def _get(self):
        if self._peeked is not None:
            item, self._peeked = self._peeked, None
            return item
        if self._thread is None:
            self._start_worker()
        while True:
            try:
                kind, payload = self._queue.get(timeout=1.0)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError('%s: data worker ended unexpectedly' % type(self).__name__)
        if kind == 'error':
            self._stop_worker()
            raise payload[1].with_traceback(payload[2])
        return payload

    def _peek(self):
        """First batch of the epoch without consuming it (for shapes)."""
        if self._peeked is None:
            if self._cursor >= len(self._batches):
                raise StopIteration
            self._peeked = self._get()
        return self._peeked

    def iter_next(self):
        return self._cursor < len(self._batches)

    def next(self):
        if not self.iter_next():
            raise StopIteration
        batch = self._get()
        self._cursor += 1
        return self._to_databatch(batch)


def _original_order(roidb, batch_size, shuffle, aspect_grouping, rng):
    """The original's AnchorLoader order: landscape images (shuffled), then portrait ones,
    the rows of ``batch_size`` permuted only when ``batch_size`` does not divide the count
    (its ``inds[:-extra]`` is empty otherwise); no grouping without shuffling."""
    n = len(roidb)
    if shuffle and aspect_grouping:
        widths = np.array([r['width'] for r in roidb])
        heights = np.array([r['height'] for r in roidb])
        inds = np.hstack((rng.permutation(np.where(widths >= heights)[0]),
                          rng.permutation(np.where(widths < heights)[0]))).astype(np.int64)
        extra = n % batch_size
        if extra:
            rows = inds[:-extra].reshape((-1, batch_size))
            inds[:-extra] = rows[rng.permutation(rows.shape[0])].reshape((-1,))
    elif shuffle:
        inds = rng.permutation(n)
    else:
        inds = np.arange(n)
    full = n // batch_size * batch_size
    return [inds[i:i + batch_size] for i in range(0, full, batch_size)]


def _grouped_order(roidb, batch_size, shuffle, aspect_grouping, rng):
    """Batches of roidb indices; with aspect grouping each batch is all-landscape or all-portrait."""
    n = len(roidb)
    if aspect_grouping:
        widths = np.array([r['width'] for r in roidb])
        heights = np.array([r['height'] for r in roidb])
        horz = np.where(widths >= heights)[0]
        vert = np.where(widths < heights)[0]
        if shuffle:
            horz, vert = rng.permutation(horz), rng.permutation(vert)
        batches, leftover = [], []
        for group in (horz, vert):
            full = len(group) // batch_size * batch_size
            batches += [group[i:i + batch_size] for i in range(0, full, batch_size)]
            leftover += list(group[full:])
        leftover = np.array(leftover, dtype=np.int64)
        full = len(leftover) // batch_size * batch_size
        batches += [leftover[i:i + batch_size] for i in range(0, full, batch_size)]
        if shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches
    order = rng.permutation(n) if shuffle else np.arange(n)
    full = n // batch_size * batch_size
    return [order[i:i + batch_size] for i in range(0, full, batch_size)]


class TrainLoaderBase(PrefetchingIter):
    """Epoch order (aspect grouping) and the seeding of a training loader; the images' records
    are ``self.<db_attr>`` (a roidb for detection, a segdb for segmentation), ``seed_salt``
    keeps the generators of different loader kinds apart."""
    db_attr = 'roidb'
    seed_salt = 0x10ad

    def _init_order(self, roidb, cfg, batch_size, ctx, shuffle, aspect_grouping, seed,
                    prefetch, name):
        if len(roidb) == 0:
            raise ValueError('%s: %s is empty' % (name, self.db_attr))
        self.ctx = list(ctx) if ctx else [mx.cpu()]
        batch_size = int(batch_size)
        if batch_size <= 0 or batch_size % len(self.ctx) != 0:
            raise ValueError('%s: batch_size %d must be a positive multiple of the '
                             'number of devices (%d)' % (name, batch_size, len(self.ctx)))
        if len(roidb) < batch_size:
            raise ValueError('%s: %d images cannot fill one batch of %d'
                             % (name, len(roidb), batch_size))
        PrefetchingIter.__init__(self, batch_size, prefetch if prefetch is not None
                                 else cfg.default.get('prefetch', 2))
        setattr(self, self.db_attr, roidb)
        self.cfg = cfg
        self.shuffle = shuffle
        self.aspect_grouping = aspect_grouping
        self._rng = np.random.RandomState(seed)
        self._order_rng = np.random.RandomState(None if seed is None else seed + 1)

    @property
    def provide_data(self):
        return [mx.io.DataDesc(k, s) for k, s in self._provide_data]

    @property
    def provide_label(self):
        return [mx.io.DataDesc(k, s) for k, s in self._provide_label]

    @property
    def iters_per_epoch(self):
        return len(getattr(self, self.db_attr)) // self.batch_size

    def _epoch_batches(self):
        order = _original_order if original_quirks(self.cfg) else _grouped_order
        return order(self.roidb, self.batch_size, self.shuffle, self.aspect_grouping,
                     self._order_rng)

    def set_epoch(self, seed, epoch):
        """Reseed the order and sampling generators from (``seed``, ``epoch``) and restart.

        The batches of an epoch (image order, scales, anchor sampling) then depend only on
        the roidb, the configuration, ``seed`` and ``epoch``, so a resumed training replays
        an epoch exactly as an uninterrupted one.
        """
        self._stop_worker()  # the old worker must not draw from the new generators
        seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), self.seed_salt])
        order_state, sample_state = seq.generate_state(2)
        self._order_rng = np.random.RandomState(int(order_state))
        self._rng = np.random.RandomState(int(sample_state))
        self.reset()

    def _to_databatch(self, batch):
        data = [mx.nd.array(batch[k]) for k in self.data_names]
        label = [mx.nd.array(batch[k]) for k in self.label_names]
        provide_data = [mx.io.DataDesc(k, batch[k].shape) for k in self.data_names]
        provide_label = [mx.io.DataDesc(k, batch[k].shape) for k in self.label_names]
        self._provide_data = [(k, batch[k].shape) for k in self.data_names]
        self._provide_label = [(k, batch[k].shape) for k in self.label_names]
        return mx.io.DataBatch(data=data, label=label, pad=0, index=batch['index'],
                               provide_data=provide_data, provide_label=provide_label)


class AnchorLoader(TrainLoaderBase):
    """Training batches for end-to-end Faster R-CNN / R-FCN.

    data: ``data`` (N, 3, H, W) (images zero-padded to the largest of the batch),
    ``im_info`` (N, 3), ``gt_boxes`` (N, G, 5) padded with -1 rows;
    label: ``label`` (N, A*H'*W'), ``bbox_target`` and ``bbox_weight`` (N, 4A, H', W')
    where (H', W') is the shape of ``feat_sym`` (``rpn_cls_score``) for that input.

    :param batch_size: images per iteration over all devices (``BATCH_IMAGES * len(ctx)``)
    :param ctx: list of contexts (the batch is split evenly across them)
    :param seed: seed of the loader's RandomState (order, scales, anchor sampling)
    """
    data_names = ['data', 'im_info', 'gt_boxes']
    label_names = ['label', 'bbox_target', 'bbox_weight']

    def __init__(self, feat_sym, roidb, cfg, batch_size=1, shuffle=False, ctx=None,
                 work_load_list=None, feat_stride=16, anchor_scales=(8, 16, 32),
                 anchor_ratios=(0.5, 1, 2), allowed_border=0, aspect_grouping=False,
                 seed=None, prefetch=None, data_names=None):
        if work_load_list is not None and len(set(work_load_list)) > 1:
            raise ValueError('AnchorLoader: uneven work_load_list is not supported')
        self._init_order(roidb, cfg, batch_size, ctx, shuffle, aspect_grouping, seed, prefetch,
                         'AnchorLoader')
        if data_names is not None:  # e.g. ('data',) for the RPN alone
            unknown = [n for n in data_names if n not in type(self).data_names]
            if unknown:
                raise ValueError('AnchorLoader: unknown data name(s) %s (it provides %s)'
                                 % (', '.join(unknown), ', '.join(type(self).data_names)))
            self.data_names = list(data_names)
        self.feat_sym = feat_sym
        self.feat_stride = int(feat_stride)
        self.anchor_scales = tuple(anchor_scales)
        self.anchor_ratios = tuple(anchor_ratios)
        self.allowed_border = allowed_border
        self._feat_cache = {}
        self._feat_lock = threading.Lock()
        self.reset()
        first = self._peek()
        self._provide_data = [(k, first[k].shape) for k in self.data_names]
        self._provide_label = [(k, first[k].shape) for k in self.label_names]

    def feat_shape(self, data_shape):
        """Shape of ``feat_sym``'s output for an input ``data`` of ``data_shape``."""
        data_shape = tuple(int(d) for d in data_shape)
        with self._feat_lock:
            return self._feat_shape_locked(data_shape)

    def _feat_shape_locked(self, data_shape):
        if data_shape not in self._feat_cache:
            _, out_shapes, _ = self.feat_sym.infer_shape(data=data_shape)
            if out_shapes is None or len(out_shapes) == 0:
                raise ValueError('AnchorLoader: cannot infer the feature shape for data %s'
                                 % (data_shape,))
            self._feat_cache[data_shape] = tuple(out_shapes[0])
        return self._feat_cache[data_shape]

    def infer_shape(self, max_data_shape=None, max_label_shape=None):
        """Label shapes for the data shapes given; returns (data shapes, label shapes)."""
        data_shape = dict(max_data_shape or [])
        shape = data_shape['data']
        feat = self.feat_shape(shape)
        num_anchors = len(self.anchor_scales) * len(self.anchor_ratios)
        n, h, w = shape[0], feat[-2], feat[-1]
        label_shape = [('label', (n, num_anchors * h * w)),
                       ('bbox_target', (n, 4 * num_anchors, h, w)),
                       ('bbox_weight', (n, 4 * num_anchors, h, w))]
        return list(data_shape.items()), label_shape

    def _make_batch(self, indices):
        ims, infos, gts = [], [], []
        for i in indices:
            tensor, im_info, gt_boxes = get_train_image(self.roidb[i], self.cfg, rng=self._rng)
            ims.append(tensor)
            infos.append(np.asarray(im_info, dtype=np.float32).reshape(1, 3))
            gts.append(np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 5))
        data = tensor_vstack(ims, pad=0).astype(np.float32)
        num_gt = max(1, max(g.shape[0] for g in gts))
        gt_boxes = np.full((len(gts), num_gt, 5), -1, dtype=np.float32)
        for k, g in enumerate(gts):
            gt_boxes[k, :g.shape[0]] = g
        per_dev = data.shape[0] // len(self.ctx)
        feat = self.feat_shape((per_dev,) + data.shape[1:])
        labels = {'label': [], 'bbox_target': [], 'bbox_weight': []}
        for k in range(len(gts)):
            res = self._assign(feat, gts[k], infos[k][0])
            for key in labels:
                labels[key].append(res[key])
        batch = {'data': data, 'im_info': np.vstack(infos), 'gt_boxes': gt_boxes,
                 'index': np.asarray(indices)}
        for key in labels:
            batch[key] = np.concatenate(labels[key], axis=0)
        return batch

    def _assign(self, feat, gt_boxes, im_info):
        return assign_anchor(feat, gt_boxes, im_info, self.cfg, self.feat_stride,
                             self.anchor_scales, self.anchor_ratios, self.allowed_border,
                             rng=self._rng)


def sample_proposal_rois(rois, labels, overlaps, bbox_targets, fg_rois_per_image,
                         rois_per_image, num_classes, cfg, rng):
    """Sample the RoIs of one image of a proposal roidb, as the original's ``sample_rois``
    with precomputed labels, overlaps and targets: foreground RoIs (overlap >= FG_THRESH,
    at most ``fg_rois_per_image``), background RoIs (overlap in [BG_THRESH_LO,
    BG_THRESH_HI)), the rest of the sample filled with further RoIs below FG_THRESH (with
    TRAIN.ORIGINAL_QUIRKS: with any RoIs, labelled background; see docs/DESIGN.md).

    :return: rois (P, 4), labels (P,), bbox targets and weights (P, 4 * regression classes)
    """
    from dcn.bbox.bbox_regression import expand_bbox_regression_targets
    fg_thresh = float(cfg.TRAIN.FG_THRESH)
    fg = np.where(overlaps >= fg_thresh)[0]
    num_fg = int(min(fg_rois_per_image, fg.size))
    if fg.size > num_fg:
        fg = rng.choice(fg, size=num_fg, replace=False)
    bg = np.where((overlaps < cfg.TRAIN.BG_THRESH_HI) & (overlaps >= cfg.TRAIN.BG_THRESH_LO))[0]
    num_bg = int(min(rois_per_image - num_fg, bg.size))
    if bg.size > num_bg:
        bg = rng.choice(bg, size=num_bg, replace=False)
    keep = np.append(fg, bg).astype(np.int64)
    if original_quirks(cfg):
        while keep.shape[0] < rois_per_image:
            gap = min(len(rois), rois_per_image - keep.shape[0])
            keep = np.append(keep, rng.choice(np.arange(len(rois)), size=gap, replace=False))
    elif keep.shape[0] < rois_per_image:
        gap = rois_per_image - keep.shape[0]
        non_fg = np.where(overlaps < fg_thresh)[0]
        rest = np.setdiff1d(non_fg, keep)
        pool = rest if len(rest) >= gap else (non_fg if len(non_fg) else np.arange(len(rois)))
        keep = np.append(keep, rng.choice(pool, size=gap, replace=gap > len(pool)))
    keep = keep.astype(np.int64)
    labels = np.asarray(labels)[keep].astype(np.float32)
    if original_quirks(cfg):
        labels[num_fg:] = 0
    else:
        labels[num_fg:][overlaps[keep[num_fg:]] < fg_thresh] = 0
    data = np.asarray(bbox_targets)[keep, :].copy()
    data[:, 0] = np.where(labels > 0, data[:, 0], 0)
    targets, weights = expand_bbox_regression_targets(data, num_classes, cfg)
    return np.asarray(rois)[keep].astype(np.float32), labels, targets, weights


class ROILoader(TrainLoaderBase):
    """Training batches for the RoI head on precomputed proposals (the original's
    ``ROIIter``): the roidb holds the proposals (and gt boxes) with ``max_classes``,
    ``max_overlaps`` and ``bbox_targets`` (:func:`dcn.bbox.bbox_regression.
    add_bbox_regression_targets`).

    data: ``data`` (N, 3, H, W), ``rois`` (N, R, 5) (image index within its device, x1, y1,
    x2, y2 in the resized image); label: ``label`` (N, R), ``bbox_target`` and
    ``bbox_weight`` (N, R, 4 * regression classes). Per image TRAIN.BATCH_ROIS /
    BATCH_IMAGES RoIs are sampled (-1: all of them, once); images of a batch with fewer
    RoIs are completed with ignored slots (label -1, zero weights).
    """
    data_names = ['data', 'rois']
    label_names = ['label', 'bbox_target', 'bbox_weight']

    def __init__(self, roidb, cfg, batch_size=1, shuffle=False, ctx=None, aspect_grouping=False,
                 seed=None, prefetch=None):
        self._init_order(roidb, cfg, batch_size, ctx, shuffle, aspect_grouping, seed, prefetch,
                         'ROILoader')
        if 'bbox_targets' not in roidb[0]:
            raise ValueError('ROILoader: the roidb has no bbox_targets (call '
                             'add_bbox_regression_targets on a proposal roidb)')
        batch_rois = int(cfg.TRAIN.BATCH_ROIS)
        if batch_rois != -1 and (batch_rois <= 0 or batch_rois % int(cfg.TRAIN.BATCH_IMAGES)):
            raise ValueError('TRAIN.BATCH_ROIS (%d) must be -1 or a positive multiple of '
                             'TRAIN.BATCH_IMAGES (%d)' % (batch_rois, cfg.TRAIN.BATCH_IMAGES))
        self.num_classes = int(cfg.dataset.NUM_CLASSES)
        self.reset()
        first = self._peek()
        self._provide_data = [(k, first[k].shape) for k in self.data_names]
        self._provide_label = [(k, first[k].shape) for k in self.label_names]

    def _make_batch(self, indices):
        cfg = self.cfg
        per_dev = len(indices) // len(self.ctx)
        ims, samples = [], []
        nscales = len(get_scales(cfg))
        for k, i in enumerate(indices):
            tensor, rec = get_train_rec(self.roidb[i], cfg, int(self._rng.randint(0, nscales)))
            ims.append(tensor)
            boxes = rec['boxes']
            if int(cfg.TRAIN.BATCH_ROIS) == -1:
                per_image = fg_per_image = boxes.shape[0]
            else:
                per_image = int(cfg.TRAIN.BATCH_ROIS) // int(cfg.TRAIN.BATCH_IMAGES)
                fg_per_image = int(np.round(cfg.TRAIN.FG_FRACTION * per_image))
            rois, labels, targets, weights = sample_proposal_rois(
                boxes, rec['max_classes'], np.asarray(rec['max_overlaps']), rec['bbox_targets'],
                fg_per_image, per_image, self.num_classes, cfg, self._rng)
            rois = np.hstack((np.full((rois.shape[0], 1), k % per_dev, np.float32), rois))
            samples.append((rois, labels, targets, weights))
        slots = max(r[0].shape[0] for r in samples)
        out = {'rois': [], 'label': [], 'bbox_target': [], 'bbox_weight': []}
        for rois, labels, targets, weights in samples:
            pad = slots - rois.shape[0]
            if pad:  # ignored slots: the last RoI again, label -1, no box loss
                rois = np.vstack((rois, np.repeat(rois[-1:], pad, axis=0)))
                labels = np.concatenate((labels, np.full((pad,), -1, np.float32)))
                targets = np.vstack((targets, np.zeros((pad, targets.shape[1]), np.float32)))
                weights = np.vstack((weights, np.zeros((pad, weights.shape[1]), np.float32)))
            for key, value in zip(('rois', 'label', 'bbox_target', 'bbox_weight'),
                                  (rois, labels, targets, weights)):
                out[key].append(value[np.newaxis])
        batch = {key: np.concatenate(value, axis=0).astype(np.float32)
                 for key, value in out.items()}
        batch['data'] = tensor_vstack(ims, pad=0).astype(np.float32)
        batch['index'] = np.asarray(indices)
        return batch


class PyramidAnchorLoader(AnchorLoader):
    """Training batches for a feature-pyramid RPN: as :class:`AnchorLoader`, with the
    anchors of every level (``feat_syms``: the score maps, ``feat_strides`` their strides)
    labelled jointly (:func:`dcn.rpn.assign_pyramid_anchor`). Labels: ``label`` (N, sum
    A*H*W), ``bbox_target`` / ``bbox_weight`` (N, 4A, sum H*W), levels in order."""

    def __init__(self, feat_syms, roidb, cfg, batch_size=1, shuffle=False, ctx=None,
                 feat_strides=(4, 8, 16, 32, 64), anchor_scales=(8,), anchor_ratios=(0.5, 1, 2),
                 allowed_border=float('inf'), aspect_grouping=False, seed=None, prefetch=None):
        feat_syms = list(feat_syms)
        self.feat_strides = tuple(int(s) for s in feat_strides)
        if len(feat_syms) != len(self.feat_strides) or not feat_syms:
            raise ValueError('PyramidAnchorLoader: %d score maps for %d strides'
                             % (len(feat_syms), len(self.feat_strides)))
        super(PyramidAnchorLoader, self).__init__(
            mx.sym.Group(feat_syms), roidb, cfg, batch_size=batch_size, shuffle=shuffle,
            ctx=ctx, feat_stride=self.feat_strides[0], anchor_scales=anchor_scales,
            anchor_ratios=anchor_ratios, allowed_border=allowed_border,
            aspect_grouping=aspect_grouping, seed=seed, prefetch=prefetch)

    def _feat_shape_locked(self, data_shape):
        if data_shape not in self._feat_cache:
            _, out_shapes, _ = self.feat_sym.infer_shape(data=data_shape)
            if not out_shapes or len(out_shapes) != len(self.feat_strides):
                raise ValueError('PyramidAnchorLoader: cannot infer the %d feature shapes for '
                                 'data %s (image sides must be multiples of the largest '
                                 'stride: network.IMAGE_STRIDE)' % (len(self.feat_strides),
                                                                     data_shape))
            self._feat_cache[data_shape] = tuple(tuple(s) for s in out_shapes)
        return self._feat_cache[data_shape]

    def infer_shape(self, max_data_shape=None, max_label_shape=None):
        data_shape = dict(max_data_shape or [])
        shape = data_shape['data']
        feats = self.feat_shape(shape)
        a = len(self.anchor_scales) * len(self.anchor_ratios)
        hw = sum(int(f[-2]) * int(f[-1]) for f in feats)
        label_shape = [('label', (shape[0], a * hw)), ('bbox_target', (shape[0], 4 * a, hw)),
                       ('bbox_weight', (shape[0], 4 * a, hw))]
        return list(data_shape.items()), label_shape

    def _assign(self, feat, gt_boxes, im_info):
        return assign_pyramid_anchor(feat, gt_boxes, im_info, self.cfg, self.feat_strides,
                                     self.anchor_scales, self.anchor_ratios,
                                     self.allowed_border, rng=self._rng)


class TestLoader(PrefetchingIter):
    """Test batches: ``data`` (N, 3, H, W) and ``im_info`` (N, 3), in roidb order; without
    an RPN (``has_rpn`` false) ``data`` and ``rois`` (N, R, 5): the boxes of the (proposal)
    roidb scaled to the resized image (rounded and clipped with TRAIN.ORIGINAL_QUIRKS, as
    the original), images with fewer boxes completed by repeating their last one.

    The last batch is completed by repeating its last image; ``DataBatch.pad``
    says how many trailing entries are repeats, ``DataBatch.index`` holds the
    roidb indices, ``DataBatch.im_info`` the (N, 3) image sizes and scales.
    """
    __test__ = False  # not a pytest test class
    data_names = ['data', 'im_info']

    def __init__(self, roidb, cfg, batch_size=1, shuffle=False, has_rpn=True, prefetch=None):
        if len(roidb) == 0:
            raise ValueError('TestLoader: roidb is empty')
        if int(batch_size) <= 0:
            raise ValueError('TestLoader: batch_size must be positive, got %r' % (batch_size,))
        super(TestLoader, self).__init__(int(batch_size), prefetch if prefetch is not None
                                         else cfg.default.get('prefetch', 2))
        self.roidb = roidb
        self.cfg = cfg
        self.shuffle = shuffle
        self.has_rpn = bool(has_rpn)
        if not self.has_rpn:
            self.data_names = ['data', 'rois']
            if 'boxes' not in roidb[0]:
                raise ValueError('TestLoader: testing without an RPN needs a proposal roidb '
                                 '(entries with boxes)')
        self._rng = np.random.RandomState(0)
        self.reset()
        first = self._peek()
        self._provide_data = [(k, first[k].shape) for k in self.data_names]

    @property
    def provide_data(self):
        return [mx.io.DataDesc(k, s) for k, s in self._provide_data]

    @property
    def provide_label(self):
        return None

    @property
    def size(self):
        return len(self.roidb)

    def _epoch_batches(self):
        n = len(self.roidb)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        batches = []
        for i in range(0, n, self.batch_size):
            chunk = order[i:i + self.batch_size]
            batches.append(chunk)
        return batches

    def _make_batch(self, indices):
        pad = self.batch_size - len(indices)
        full = np.concatenate([indices, np.repeat(indices[-1:], pad)]) if pad else indices
        ims, recs = get_image([self.roidb[i] for i in full], self.cfg)
        batch = {'data': tensor_vstack(ims, pad=0).astype(np.float32),
                 'im_info': np.vstack([np.asarray(r['im_info'], np.float32).reshape(1, 3)
                                       for r in recs]),
                 'index': np.asarray(indices), 'pad': pad}
        if not self.has_rpn:
            batch['rois'] = self._rois(full, recs)
        return batch

    def _rois(self, full, recs):
        from dcn.bbox import clip_boxes
        boxes = []
        for i, rec in zip(full, recs):
            b = np.asarray(rec['boxes'], np.float32)[:, :4]
            if original_quirks(self.cfg):
                scale = float(rec['im_info'][2])
                b = clip_boxes(np.round(np.asarray(self.roidb[i]['boxes'], np.float64)[:, :4] *
                                        scale), rec['im_info'][:2]).astype(np.float32)
            if b.shape[0] == 0:
                raise ValueError('TestLoader: image %s has no proposals' % rec['image'])
            boxes.append(b)
        slots = max(b.shape[0] for b in boxes)
        rois = np.zeros((len(boxes), slots, 5), np.float32)
        for k, b in enumerate(boxes):
            b = np.vstack((b, np.repeat(b[-1:], slots - b.shape[0], axis=0)))
            rois[k, :, 0] = k
            rois[k, :, 1:] = b
        return rois

    def _to_databatch(self, batch):
        data = [mx.nd.array(batch[k]) for k in self.data_names]
        provide_data = [mx.io.DataDesc(k, batch[k].shape) for k in self.data_names]
        self._provide_data = [(k, batch[k].shape) for k in self.data_names]
        out = mx.io.DataBatch(data=data, label=None, pad=batch['pad'], index=batch['index'],
                              provide_data=provide_data, provide_label=None)
        out.im_info = batch['im_info']
        return out
