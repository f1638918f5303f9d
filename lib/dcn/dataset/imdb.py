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
        return self._cached_gt_db('roidb', self._annotation_sources(), self._load_checked_roidb,
                                  'annotations')

    def _load_checked_roidb(self):
        roidb = self._load_gt_roidb()
        if len(roidb) != self.num_images:
            raise RuntimeError('%s: roidb has %d entries for %d images' % (self.name, len(roidb), self.num_images))
        return roidb

    def _cached_gt_db(self, kind, sources, build, changed, log=logger):
        """The ground-truth database ``kind`` ('roidb', 'segdb') from the cache file
        ``<cache_path>/<name>_gt_<kind>.pkl`` when the signature of ``sources`` it records is
        up to date; else ``build()``, written to that file.  ``changed`` names the sources in
        the message of a stale cache; ``log``: the logger of the messages."""
        cache_file = os.path.join(self.cache_path, '%s_gt_%s.pkl' % (self.name, kind))
        sig = self._signature(sources)
        if os.path.isfile(cache_file):
            try:
                with open(cache_file, 'rb') as f:
                    cached = pickle.load(f)
                if isinstance(cached, dict) and cached.get('signature') == sig:
                    log.info('%s gt %s loaded from %s', self.name, kind, cache_file)
                    return cached[kind]
                log.info('%s: %s changed, rebuilding %s', self.name, changed, cache_file)
            except Exception as exc:  # corrupt/incompatible cache: rebuild it
                log.warning('%s: ignoring unreadable cache %s (%s)', self.name, cache_file, exc)
        db = build()
        atomic_write_bytes(cache_file, pickle.dumps({'signature': sig, kind: db},
                                                    protocol=pickle.HIGHEST_PROTOCOL))
        log.info('%s gt %s written to %s', self.name, kind, cache_file)
        return db

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

    # -- precomputed proposals ------------------------------------------------------------
    def rpn_file(self, full=False):
        """``<result_path>/rpn_data/<name>_rpn.pkl`` (``_full_rpn.pkl``: before the score
        threshold), where :func:`dcn.engine.proposals.generate_proposals` writes them."""
        return os.path.join(self.result_path, 'rpn_data',
                            self.name + ('_full_rpn.pkl' if full else '_rpn.pkl'))

    def load_rpn_data(self, full=False):
        """The dumped proposals: a list over images of (k, 5) arrays x1, y1, x2, y2, score."""
        path = self.rpn_file(full)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                'proposals of %s not found: %s (dataset.proposal: rpn reads the file that '
                'testing the RPN writes, e.g. experiments/rfcn/rfcn_test_rpn.py)'
                % (self.name, path))
        with open(path, 'rb') as f:
            box_list = pickle.load(f)
        logger.info('loaded proposals of %s from %s', self.name, path)
        return box_list

    def rpn_roidb(self, gt_roidb, append_gt=False):
        """Roidb of the dumped RPN proposals, after the ground truth with ``append_gt``."""
        roidb = self.create_roidb_from_box_list(self.load_rpn_data(), gt_roidb)
        if append_gt:
            roidb = IMDB.merge_roidbs([dict(r) for r in gt_roidb], roidb)
        return roidb

    def proposal_roidb(self, proposal, gt_roidb, append_gt=False):
        """Roidb of the proposals named by ``dataset.proposal`` (``rpn``, or a method
        ``<proposal>_roidb`` the dataset provides, e.g. selective search)."""
        method = getattr(self, '%s_roidb' % proposal, None)
        if method is None or str(proposal) == 'gt':
            available = sorted(m[:-len('_roidb')] for m in dir(self)
                               if m.endswith('_roidb') and not m.startswith('_') and
                               m not in ('gt_roidb', 'proposal_roidb'))
            raise ValueError('dataset.proposal is %r but %s provides no such proposals '
                             '(available: %s)' % (proposal, type(self).__name__,
                                                  ', '.join(available)))
        return method(gt_roidb, append_gt=append_gt)

    def create_roidb_from_box_list(self, box_list, gt_roidb):
        """Roidb entries of the boxes ``box_list[i]`` ((k, 4) or (k, 5), score dropped) of
        every image: class 0, overlaps with the gt boxes of ``gt_roidb`` (each box counts
        for the class of the gt box it overlaps most)."""
        from dcn.bbox import bbox_overlaps
        if len(box_list) != self.num_images:
            raise ValueError('%s: %d proposal arrays for %d images (proposals of another image '
                             'set?)' % (self.name, len(box_list), self.num_images))
        roidb = []
        for i in range(self.num_images):
            boxes = np.asarray(box_list[i], dtype=np.float32)
            if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
                raise ValueError('%s: proposals of image %d must be (k, 4) or (k, 5), got %s'
                                 % (self.name, i, boxes.shape))
            boxes = boxes[:, :4].copy()
            overlaps = np.zeros((boxes.shape[0], self.num_classes), dtype=np.float32)
            gt = gt_roidb[i] if gt_roidb is not None else None
            if gt is not None and len(gt['boxes']) and boxes.shape[0]:
                ov = np.asarray(bbox_overlaps(boxes.astype(np.float64),
                                              np.asarray(gt['boxes'], np.float64)))
                argmax, maxes = ov.argmax(axis=1), ov.max(axis=1)
                pos = np.where(maxes > 0)[0]
                overlaps[pos, np.asarray(gt['gt_classes'])[argmax[pos]]] = maxes[pos]
            rec = {'boxes': boxes, 'gt_classes': np.zeros((boxes.shape[0],), np.int32),
                   'gt_overlaps': overlaps,
                   'max_classes': overlaps.argmax(axis=1) if boxes.shape[0] else
                   np.zeros((0,), np.int64),
                   'max_overlaps': overlaps.max(axis=1) if boxes.shape[0] else
                   np.zeros((0,), np.float32),
                   'flipped': False}
            for key in ('image', 'height', 'width'):
                rec[key] = gt[key] if gt is not None else None
            roidb.append(rec)
        return roidb

    @staticmethod
    def merge_roidbs(a, b):
        """Entry-wise concatenation of the boxes of ``b`` after those of ``a`` (in place)."""
        if len(a) != len(b):
            raise ValueError('merge_roidbs: %d and %d entries' % (len(a), len(b)))
        for ra, rb in zip(a, b):
            ra['boxes'] = np.vstack((ra['boxes'], rb['boxes'])).astype(np.float32)
            ra['gt_classes'] = np.hstack((ra['gt_classes'], rb['gt_classes'])).astype(np.int32)
            ra['gt_overlaps'] = np.vstack((ra['gt_overlaps'], rb['gt_overlaps']))
            ra['max_classes'] = np.hstack((ra['max_classes'], rb['max_classes']))
            ra['max_overlaps'] = np.hstack((ra['max_overlaps'], rb['max_overlaps']))
        return a

    def evaluate_recall(self, roidb, candidate_boxes=None, thresholds=None, top_n=None):
        """Proposal recall as the original's ``evaluate_recall``: every gt box (class > 0,
        overlap 1) is matched greedily to a distinct candidate (best covered gt first);
        recall at each IoU threshold (default 0.5:0.05:0.95) and their mean (average
        recall), for all boxes and by gt area (0-25, 25-50, 50-100, 100-200, 200-300,
        300-inf pixels, side of the square). ``candidate_boxes[i]`` (k, 4 or 5) default to
        the non-gt boxes of ``roidb``; ``top_n`` keeps the first (best) ``top_n`` of each.

        Returns {'thresholds', 'recalls' (all areas), 'ar', 'areas': {name: (ar, recalls)},
        'num_proposals' (mean per image), 'log'}.
        """
        from dcn.bbox import bbox_overlaps
        area_names = ['all', '0-25', '25-50', '50-100', '100-200', '200-300', '300-inf']
        area_ranges = [[0 ** 2, 1e5 ** 2], [0 ** 2, 25 ** 2], [25 ** 2, 50 ** 2],
                       [50 ** 2, 100 ** 2], [100 ** 2, 200 ** 2], [200 ** 2, 300 ** 2],
                       [300 ** 2, 1e5 ** 2]]
        if thresholds is None:
            thresholds = np.arange(0.5, 0.95 + 1e-5, 0.05)
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if len(roidb) != self.num_images:
            raise ValueError('evaluate_recall: %d roidb entries for %d images'
                             % (len(roidb), self.num_images))
        if candidate_boxes is not None and len(candidate_boxes) != self.num_images:
            raise ValueError('evaluate_recall: %d candidate arrays for %d images'
                             % (len(candidate_boxes), self.num_images))

        def _candidates(i):
            if candidate_boxes is None:
                rec = roidb[i]
                boxes = np.asarray(rec['boxes'])[np.asarray(rec['gt_classes']) == 0]
            else:
                boxes = np.asarray(candidate_boxes[i]).reshape(-1, np.shape(
                    candidate_boxes[i])[-1] if np.size(candidate_boxes[i]) else 4)
            boxes = boxes[:, :4]
            return boxes[:top_n] if top_n is not None else boxes

        lines = []
        counts = []
        for lo_hi in area_ranges[1:]:
            count = 0
            for i in range(self.num_images):
                b = _candidates(i)
                areas = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
                count += int(np.sum((areas >= lo_hi[0]) & (areas < lo_hi[1])))
            counts.append(count)
        total = float(sum(counts))
        for name, count in zip(area_names[1:], counts):
            lines.append('percentage of %s %.4f' % (name, count / total if total else 0.0))
        lines.append('average number of proposal %.1f' % (total / max(self.num_images, 1)))
        result = {'thresholds': thresholds, 'areas': {},
                  'num_proposals': total / max(self.num_images, 1)}
        for name, (lo, hi) in zip(area_names, area_ranges):
            gt_overlaps = []
            num_pos = 0
            for i in range(self.num_images):
                rec = roidb[i]
                max_gt = np.asarray(rec['gt_overlaps']).max(axis=1) if len(rec['boxes'])                     else np.zeros((0,))
                gt_inds = np.where((np.asarray(rec['gt_classes']) > 0) & (max_gt == 1))[0]
                gt_boxes = np.asarray(rec['boxes'])[gt_inds, :]
                areas = (gt_boxes[:, 2] - gt_boxes[:, 0] + 1) * (gt_boxes[:, 3] - gt_boxes[:, 1] + 1)
                gt_boxes = gt_boxes[(areas >= lo) & (areas < hi)]
                num_pos += len(gt_boxes)
                boxes = _candidates(i)
                if boxes.shape[0] == 0 or gt_boxes.shape[0] == 0:
                    continue
                ov = np.array(bbox_overlaps(boxes.astype(np.float64),
                                            gt_boxes.astype(np.float64)))
                covered = np.zeros((gt_boxes.shape[0],))
                for j in range(min(boxes.shape[0], gt_boxes.shape[0])):
                    best_box = ov.argmax(axis=0)
                    best_ov = ov.max(axis=0)
                    gt_ind = best_ov.argmax()
                    box_ind = best_box[gt_ind]
                    covered[j] = ov[box_ind, gt_ind]
                    ov[box_ind, :] = -1
                    ov[:, gt_ind] = -1
                gt_overlaps.append(covered)
            gt_overlaps = np.sort(np.hstack(gt_overlaps)) if gt_overlaps else np.zeros((0,))
            recalls = np.array([(gt_overlaps >= t).sum() / float(num_pos) if num_pos else 0.0
                                for t in thresholds])
            ar = float(recalls.mean())
            result['areas'][name] = (ar, recalls)
            lines.append('average recall for %s: %.3f' % (name, ar))
            lines.extend('recall @%.2f: %.3f' % (t, r) for t, r in zip(thresholds, recalls))
        result['ar'], result['recalls'] = result['areas']['all']
        result['log'] = '\n'.join(lines)
        return result

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
