"""MS COCO detection (instances annotations through pycocotools).

Expected layout::

    <data_path>/annotations/instances_<image_set>.json    (image_info_<image_set>.json for test-dev)
    <data_path>/images/<data_name>/<file_name>

where ``data_name`` is the image directory of the split ('val2014' for 'minival2014' and
'valminusminival2014', 'test2015' for 'test-dev2015'/'test2015', else the split itself).
Class indices are contiguous (1..80, in category id order); crowd boxes are left out.
"""
import contextlib
import io
import json
import logging
import os

import numpy as np

from .imdb import IMDB, atomic_write_text, make_roidb_entry

logger = logging.getLogger(__name__)

LAYOUT_HELP = ('  <data_path>/annotations/instances_<image_set>.json\n'
               '  <data_path>/annotations/image_info_<image_set>.json   (test sets)\n'
               '  <data_path>/images/<data_name>/<file_name from the json>')

_DATA_NAME = {'minival2014': 'val2014', 'valminusminival2014': 'val2014',
              'test-dev2015': 'test2015', 'test-dev2017': 'test2017'}


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


class coco(IMDB):  # noqa: N801 (name used by the configs: dataset: coco)
    """COCO detection split ``image_set`` (e.g. 'train2014', 'minival2014', 'test-dev2015')."""

    def __init__(self, image_set, root_path, data_path, result_path=None):
        super().__init__('coco', image_set, root_path, data_path, result_path)
        from pycocotools.coco import COCO
        self.data_path = os.fspath(data_path)
        if not os.path.isdir(self.data_path):
            raise FileNotFoundError('coco: data path not found: %s (config key '
                                    'dataset.dataset_path: put '
                                    'the data there or change the key)\nexpected layout:\n%s'
                                    % (self.data_path, LAYOUT_HELP))
        self.data_name = _DATA_NAME.get(image_set, image_set)
        self.annotation_file = self._find_annotation_file()
        try:
            with _quiet():
                self._coco = COCO(self.annotation_file)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise ValueError('coco: malformed annotation file %s: %s' % (self.annotation_file, exc)) from None
        ds = self._coco.dataset
        if 'images' not in ds or 'categories' not in ds:
            raise ValueError("coco: annotation file %s lacks 'images' or 'categories'" % self.annotation_file)
        self.has_annotations = 'annotations' in ds
        cats = self._coco.loadCats(sorted(self._coco.getCatIds()))
        self.classes = ['__background__'] + [c['name'] for c in cats]
        self._class_to_coco_cat_id = {c['name']: c['id'] for c in cats}
        self._coco_cat_id_to_class = {c['id']: i + 1 for i, c in enumerate(cats)}
        self._class_ind_to_coco_cat_id = {i + 1: c['id'] for i, c in enumerate(cats)}
        self.image_set_index = sorted(self._coco.getImgIds())

    def _find_annotation_file(self):
        ann_dir = os.path.join(self.data_path, 'annotations')
        cands = [os.path.join(ann_dir, 'instances_%s.json' % self.image_set),
                 os.path.join(ann_dir, 'image_info_%s.json' % self.image_set)]
        for c in cands:
            if os.path.isfile(c):
                return c
        raise FileNotFoundError('coco: annotation file not found (looked for %s)\nexpected layout:\n%s'
                                % (' and '.join(cands), LAYOUT_HELP))

    def image_path_from_index(self, index):
        info = self._coco.imgs[index]
        p = os.path.join(self.data_path, 'images', self.data_name, info['file_name'])
        if not os.path.isfile(p):
            raise FileNotFoundError('coco: image not found: %s' % p)
        return p

    def _annotation_sources(self):
        return [self.annotation_file]

    def _load_gt_roidb(self):
        return [self._load_annotation(i) for i in self.image_set_index]

    def _load_annotation(self, index):
        info = self._coco.imgs[index]
        width, height = int(info['width']), int(info['height'])
        boxes, classes = [], []
        for ann in self._coco.imgToAnns.get(index, []):
            if ann.get('iscrowd', 0):
                continue
            try:
                x, y, w, h = [float(v) for v in ann['bbox']]
            except (KeyError, TypeError, ValueError):
                raise ValueError('coco: malformed bbox in annotation %r of %s'
                                 % (ann.get('id'), self.annotation_file)) from None
            x1 = max(0.0, x)
            y1 = max(0.0, y)
            x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
            y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
            if ann.get('area', 1) > 0 and x2 >= x1 and y2 >= y1:
                if ann['category_id'] not in self._coco_cat_id_to_class:
                    raise ValueError('coco: annotation %r of %s has unknown category_id %r'
                                     % (ann.get('id'), self.annotation_file, ann['category_id']))
                boxes.append([x1, y1, x2, y2])
                classes.append(self._coco_cat_id_to_class[ann['category_id']])
        return make_roidb_entry(self.image_path_from_index(index), height, width, boxes, classes,
                                self.num_classes)

    # -- evaluation -------------------------------------------------------------------
    def results_file(self):
        return os.path.join(self.result_path, 'detections_%s_results.json' % self.image_set)

    def write_results(self, all_boxes):
        results = []
        for c in range(1, self.num_classes):
            cat_id = self._class_ind_to_coco_cat_id[c]
            for i, index in enumerate(self.image_set_index):
                dets = np.asarray(all_boxes[c][i], dtype=np.float64)
                if dets.size == 0:
                    continue
                for k in range(dets.shape[0]):
                    x1, y1, x2, y2, s = dets[k, :5]
                    results.append({'image_id': int(index), 'category_id': int(cat_id),
                                    'bbox': [round(x1, 2), round(y1, 2), round(x2 - x1 + 1, 2),
                                             round(y2 - y1 + 1, 2)],
                                    'score': round(float(s), 5)})
        path = self.results_file()
        atomic_write_text(path, json.dumps(results))
        logger.info('coco %s: %d detections written to %s', self.image_set, len(results), path)
        return path, results

    def evaluate_detections(self, all_boxes):
        """COCO box AP; returns {'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'} (empty for test sets)."""
        self._check_all_boxes(all_boxes)
        path, results = self.write_results(all_boxes)
        if not self.has_annotations:
            logger.info('coco %s has no annotations: results written to %s for the evaluation server,'
                        ' no metrics computed', self.image_set, path)
            return {}
        keys = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
        if not results:
            logger.warning('coco %s: no detections; all metrics are 0', self.image_set)
            return {k: 0.0 for k in keys}
        from pycocotools.cocoeval import COCOeval
        with _quiet():
            dt = self._coco.loadRes(results)
            ev = COCOeval(self._coco, dt, 'bbox')
            ev.params.imgIds = list(self.image_set_index)
            ev.evaluate()
            ev.accumulate()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            ev.summarize()
        metrics = {k: float(ev.stats[j]) for j, k in enumerate(keys)}
        # per-class AP over IoU 0.5:0.95, all areas, 100 detections
        prec = ev.eval['precision'][:, :, :, 0, -1]
        lines = ['coco %s detection results' % self.image_set, out.getvalue().rstrip(),
                 '%-20s %7s' % ('class', 'AP')]
        for c in range(1, self.num_classes):
            p = prec[:, :, c - 1]
            ap = float(np.mean(p[p > -1])) if np.any(p > -1) else float('nan')
            metrics['AP/%s' % self.classes[c]] = ap
            lines.append('%-20s %7.4f' % (self.classes[c], ap))
        logger.info('\n'.join(lines))
        return metrics
