"""IMDB: the base class of detection datasets.

A dataset lists its images (``image_set_index``), builds a roidb (one dict per image, see
docs/DESIGN.md) and evaluates detections. The ground-truth roidb is cached as a pickle under
``<root_path>/cache/<name>_gt_roidb.pkl`` together with a signature (path, size, mtime) of
the annotation sources; the cache is rebuilt when the sources change and written atomically.
"""
import hashlib
import logging
import os
import pickle

import numpy as np

from dcn.fileio import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def make_roidb_entry(image, height, width, boxes, gt_classes, num_classes, flipped=False):
    """Build a ground-truth roidb entry (see docs/DESIGN.md)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    gt_classes = np.asarray(gt_classes, dtype=np.int32).reshape(-1)
    k = boxes.shape[0]
    overlaps = np.zeros((k, num_classes), dtype=np.float32)
    if k:
        overlaps[np.arange(k), gt_classes] = 1.0
    return {
        'image': image,
        'height': int(height),
        'width': int(width),
        'boxes': boxes,
        'gt_classes': gt_classes,
        'gt_overlaps': overlaps,
        'max_classes': overlaps.argmax(axis=1) if k else np.zeros((0,), dtype=np.int64),
        'max_overlaps': overlaps.max(axis=1) if k else np.zeros((0,), dtype=np.float32),
        'flipped': bool(flipped),
    }


class IMDB(object):
    """Base class. Subclasses set ``classes`` and ``image_set_index`` and implement
    ``image_path_from_index``, ``_load_gt_roidb``, ``_annotation_sources`` and
    ``evaluate_detections``."""

    def __init__(self, name, image_set, root_path, dataset_path, result_path=None):
        self.name = name + '_' + image_set
        self.image_set = image_set
        self.root_path = os.fspath(root_path)
        self.dataset_path = os.fspath(dataset_path)
        self._result_path = result_path
        self.classes = []
        self.image_set_index = []

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def num_images(self):
        return len(self.image_set_index)

    @property
    def cache_path(self):
        return os.path.join(self.root_path, 'cache')

    @property
    def result_path(self):
        if self._result_path:
            return self._result_path
        return os.path.join(self.root_path, 'results')

    def image_path_from_index(self, index):
        raise NotImplementedError

    def image_path_at(self, i):
        return self.image_path_from_index(self.image_set_index[i])

    def _load_gt_roidb(self):
        raise NotImplementedError

    def _annotation_sources(self):
        """Files whose content defines the ground truth (used for the cache signature)."""
        raise NotImplementedError

    def evaluate_detections(self, all_boxes):
        raise NotImplementedError

    # -- roidb and its cache ------------------------------------------------------------
    def _signature(self, sources=None):
        h = hashlib.sha1()
        h.update(('v%d|%s|%d' % (CACHE_VERSION, self.name, self.num_classes)).encode())
        for p in (self._annotation_sources() if sources is None else sources):
            try:
                st = os.stat(p)
            except OSError:
                raise FileNotFoundError('annotation file missing: %s' % p) from None
            h.update(('%s|%d|%d\n' % (os.path.abspath(p), st.st_size, st.st_mtime_ns)).encode())
        return h.hexdigest()

    def gt_roidb(self):
        """Ground-truth roidb (list of dicts), from the cache when it is up to date."""
        cache_file = os.path.join(self.cache_path, self.name + '_gt_roidb.pkl')
        sig = self._signature()
        if os.path.isfile(cache_file):
            try:
                with open(cache_file, 'rb') as f:
                    cached = pickle.load(f)
                if isinstance(cached, dict) and cached.get('signature') == sig:
                    logger.info('%s gt roidb loaded from %s', self.name, cache_file)
                    return cached['roidb']
                logger.info('%s: annotations changed, rebuilding %s', self.name, cache_file)
            except Exception as exc:  # corrupt/incompatible cache: rebuild it
                logger.warning('%s: ignoring unreadable cache %s (%s)', self.name, cache_file, exc)
        roidb = self._load_gt_roidb()
        if len(roidb) != self.num_images:
            raise RuntimeError('%s: roidb has %d entries for %d images' % (self.name, len(roidb), self.num_images))
        atomic_write_bytes(cache_file, pickle.dumps({'signature': sig, 'roidb': roidb},
                                                    protocol=pickle.HIGHEST_PROTOCOL))
        logger.info('%s gt roidb written to %s', self.name, cache_file)
        return roidb

    @staticmethod
    def append_flipped_images(roidb):
        """Return ``roidb`` followed by horizontally mirrored copies of its entries."""
        flipped = []
        for rec in roidb:
            boxes = np.asarray(rec['boxes']).copy()
            w = rec['width']
            x1 = boxes[:, 0].copy()
            x2 = boxes[:, 2].copy()
            boxes[:, 0] = w - x2 - 1
            boxes[:, 2] = w - x1 - 1
            if boxes.size and not (boxes[:, 2] >= boxes[:, 0]).all():
                raise ValueError('invalid box (x2 < x1 or outside width %d) in %s' % (w, rec['image']))
            entry = dict(rec)
            entry['boxes'] = boxes
            entry['flipped'] = not rec.get('flipped', False)
            flipped.append(entry)
        logger.info('appended %d flipped images', len(flipped))
        return list(roidb) + flipped

    def _check_all_boxes(self, all_boxes):
        if len(all_boxes) != self.num_classes:
            raise ValueError('all_boxes must have one list per class (%d), got %d'
                             % (self.num_classes, len(all_boxes)))
        for c in range(1, self.num_classes):
            if len(all_boxes[c]) != self.num_images:
                raise ValueError('all_boxes[%d] must have one array per image (%d), got %d'
                                 % (c, self.num_images, len(all_boxes[c])))
            for i, d in enumerate(all_boxes[c]):
                d = np.asarray(d)
                if d.size and (d.ndim != 2 or d.shape[1] < 5):
                    raise ValueError('all_boxes[%d][%d] must be (k, 5) [x1, y1, x2, y2, score], got %s'
                                     % (c, i, d.shape))


def merge_roidb(roidbs):
    """Concatenate a list of roidbs."""
    out = []
    for r in roidbs:
        out.extend(r)
    return out


def filter_roidb(roidb):
    """Drop entries without any ground-truth object; logs how many were removed."""
    keep = [r for r in roidb if len(r['boxes']) > 0 and np.any(np.asarray(r['gt_classes']) > 0)]
    logger.info('filter_roidb: removed %d images without objects, %d remain',
                len(roidb) - len(keep), len(keep))
    return keep
