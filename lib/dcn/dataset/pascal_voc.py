"""PASCAL VOC (VOCdevkit layout) and the shared VOC-layout dataset logic.

Expected layout::

    <devkit_path>/VOC2007/Annotations/<index>.xml
    <devkit_path>/VOC2007/ImageSets/Main/<split>.txt
    <devkit_path>/VOC2007/JPEGImages/<index>.jpg

``image_set`` is '<year>_<split>', e.g. '2007_trainval'; combine sets with '+' through
``dcn.dataset.load_gt_roidb``. For semantic segmentation (``gt_segdb``) the labels are
``VOC<year>/SegmentationClass/<index>.png`` (palette PNGs, 0-20, 255 boundary) and the lists
``ImageSets/Main/<split>.txt`` as the original, e.g. '2012_train_seg' for the SBD-augmented
training list ``train_seg.txt`` and '2012_val_seg'.
"""
import logging
import os

import numpy as np

from .imdb import IMDB, atomic_write_text, make_roidb_entry
from .segmentation import SegmentationIMDB
from .voc_eval import parse_voc_xml, voc_eval_class

logger = logging.getLogger(__name__)

VOC_CLASSES = ('__background__', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person',
               'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')

EVAL_THRESHOLDS = (0.5, 0.7)


class VOCLayoutIMDB(IMDB):
    """A dataset stored as Annotations/ + ImageSets/Main/ + JPEGImages/ under ``data_path``."""

    image_ext = '.jpg'
    use_07_metric = False
    use_difficult = False          # difficult objects are left out of the training roidb
    layout_help = ''

    def __init__(self, name, image_set, split, root_path, dataset_path, data_path, classes,
                 result_path=None):
        super().__init__(name, image_set, root_path, dataset_path, result_path)
        self.split = split
        self.data_path = data_path
        self.classes = list(classes)
        self._class_to_ind = {c: i for i, c in enumerate(self.classes)}
        self.image_set_index = self._load_image_set_index()

    def _image_set_file(self):
        return os.path.join(self.data_path, 'ImageSets', 'Main', self.split + '.txt')

    def _load_image_set_index(self):
        f = self._image_set_file()
        if not os.path.isdir(self.data_path):
            raise FileNotFoundError('%s: dataset directory not found: %s\nexpected layout:\n%s'
                                    % (self.name, self.data_path, self.layout_help))
        if not os.path.isfile(f):
            raise FileNotFoundError('%s: image set file not found: %s\nexpected layout:\n%s'
                                    % (self.name, f, self.layout_help))
        with open(f) as fh:
            index = [line.split()[0] for line in fh if line.strip()]
        if not index:
            raise ValueError('%s: image set file %s lists no images' % (self.name, f))
        return index

    def image_path_from_index(self, index):
        p = os.path.join(self.data_path, 'JPEGImages', index + self.image_ext)
        if not os.path.isfile(p):
            raise FileNotFoundError('%s: image not found: %s' % (self.name, p))
        return p

    def segmentation_path_from_index(self, index):
        return os.path.join(self.data_path, 'SegmentationClass', index + '.png')

    def annotation_path(self, index):
        return os.path.join(self.data_path, 'Annotations', index + '.xml')

    def _annotation_sources(self):
        return [self._image_set_file()] + [self.annotation_path(i) for i in self.image_set_index]

    def _image_size(self, index, path, size):
        if size is not None and size[0] > 0 and size[1] > 0:
            return size
        import cv2
        im = cv2.imread(path)
        if im is None:
            raise IOError('%s: cannot read image %s' % (self.name, path))
        return im.shape[1], im.shape[0]

    def _load_annotation(self, index):
        xml = self.annotation_path(index)
        objs, size = parse_voc_xml(xml)
        image = self.image_path_from_index(index)
        width, height = self._image_size(index, image, size)
        if not self.use_difficult:
            objs = [o for o in objs if not o['difficult']]
        boxes, classes = [], []
        for o in objs:
            if o['name'] not in self._class_to_ind:
                raise ValueError('%s: unknown class %r in %s (classes: %s)'
                                 % (self.name, o['name'], xml, ', '.join(self.classes[1:])))
            x1, y1, x2, y2 = o['bbox']
            if x1 < 0 or y1 < 0 or x2 > width - 1 or y2 > height - 1:
                # a few VOC boxes touch the border by one pixel; clip them
                x1, y1 = max(x1, 0.0), max(y1, 0.0)
                x2, y2 = min(x2, width - 1.0), min(y2, height - 1.0)
            boxes.append([x1, y1, x2, y2])
            classes.append(self._class_to_ind[o['name']])
        return make_roidb_entry(image, height, width, boxes, classes, self.num_classes)

    def _load_gt_roidb(self):
        return [self._load_annotation(i) for i in self.image_set_index]

    def _load_eval_gt(self):
        """Per image: (boxes (K, 4), class indices (K,), difficult (K,)) with difficult objects."""
        gt = []
        for index in self.image_set_index:
            xml = self.annotation_path(index)
            objs, _ = parse_voc_xml(xml)
            boxes = np.array([o['bbox'] for o in objs], dtype=np.float64).reshape(-1, 4)
            cls = []
            for o in objs:
                if o['name'] not in self._class_to_ind:
                    raise ValueError('%s: unknown class %r in %s' % (self.name, o['name'], xml))
                cls.append(self._class_to_ind[o['name']])
            gt.append((boxes, np.array(cls, dtype=np.int64),
                       np.array([bool(o['difficult']) for o in objs], dtype=bool)))
        return gt

    # -- evaluation -------------------------------------------------------------------
    def results_dir(self):
        return os.path.join(self.result_path, self.name)

    def write_results(self, all_boxes):
        """Write one 'comp4_det_<split>_<class>.txt' per class (1-based VOC coordinates)."""
        d = self.results_dir()
        os.makedirs(d, exist_ok=True)
        paths = []
        for c, cls in enumerate(self.classes):
            if c == 0:
                continue
            lines = []
            for i, index in enumerate(self.image_set_index):
                dets = np.asarray(all_boxes[c][i])
                for k in range(dets.shape[0] if dets.size else 0):
                    lines.append('%s %.3f %.1f %.1f %.1f %.1f\n' % (
                        index, dets[k, 4], dets[k, 0] + 1, dets[k, 1] + 1, dets[k, 2] + 1, dets[k, 3] + 1))
            p = os.path.join(d, 'comp4_det_%s_%s.txt' % (self.split, cls))
            atomic_write_text(p, ''.join(lines))
            paths.append(p)
        logger.info('%s: detections written to %s', self.name, d)
        return paths

    def evaluate_detections(self, all_boxes, write=True):
        """VOC AP per class at IoU 0.5 and 0.7; returns {'mAP@0.5', 'mAP@0.7', 'AP@0.5/<cls>', ...}."""
        self._check_all_boxes(all_boxes)
        if write:
            self.write_results(all_boxes)
        gt = self._load_eval_gt()
        metrics = {}
        rows = []
        for c, cls in enumerate(self.classes):
            if c == 0:
                continue
            gts = {}
            for i, (boxes, classes, difficult) in enumerate(gt):
                m = classes == c
                if m.any():
                    gts[i] = (boxes[m], difficult[m])
            dets = []
            for i in range(self.num_images):
                d = np.asarray(all_boxes[c][i])
                for k in range(d.shape[0] if d.size else 0):
                    dets.append((i, float(d[k, 4]), d[k, :4]))
            row = [cls]
            for t in EVAL_THRESHOLDS:
                _, _, ap = voc_eval_class(dets, gts, ovthresh=t, use_07_metric=self.use_07_metric)
                metrics['AP@%.1f/%s' % (t, cls)] = ap
                row.append(ap)
            rows.append(row)
        for j, t in enumerate(EVAL_THRESHOLDS):
            aps = [r[j + 1] for r in rows if not np.isnan(r[j + 1])]
            metrics['mAP@%.1f' % t] = float(np.mean(aps)) if aps else float('nan')
        self._log_table(rows, metrics)
        return metrics

    def _log_table(self, rows, metrics):
        metric = 'VOC07 11-point' if self.use_07_metric else 'area'
        w = max([len(r[0]) for r in rows] + [5])
        lines = ['%s detection results (%s metric)' % (self.name, metric),
                 '%-*s  %7s  %7s' % (w, 'class', 'AP@0.5', 'AP@0.7')]
        for r in rows:
            lines.append('%-*s  %7.4f  %7.4f' % (w, r[0], r[1], r[2]))
        lines.append('%-*s  %7.4f  %7.4f' % (w, 'mean', metrics['mAP@0.5'], metrics['mAP@0.7']))
        logger.info('\n'.join(lines))


def unique_boxes(boxes, scale=1.0):
    """Indices (ascending) of the first occurrence of each box, boxes compared after rounding
    (the original's rule for the selective-search boxes)."""
    hashes = np.round(np.asarray(boxes, np.float64) * scale).dot([1, 1e3, 1e6, 1e9])
    _, index = np.unique(hashes, return_index=True)
    return np.sort(index)


def filter_small_boxes(boxes, min_size):
    """Indices of boxes with x2 - x1 >= min_size and y2 - y1 > min_size (the original's rule:
    no +1, strict in height)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.where((w >= min_size) & (h > min_size))[0]


class PascalVOC(SegmentationIMDB, VOCLayoutIMDB):
    """PASCAL VOC 2007/2012 from a VOCdevkit directory."""

    layout_help = ('  <devkit_path>/VOC<year>/Annotations/<index>.xml\n'
                   '  <devkit_path>/VOC<year>/ImageSets/Main/<split>.txt\n'
                   '  <devkit_path>/VOC<year>/JPEGImages/<index>.jpg')

    def __init__(self, image_set, root_path, devkit_path, result_path=None):
        if '_' not in image_set:
            raise ValueError("PascalVOC image_set must be '<year>_<split>' (e.g. '2007_trainval'), got %r"
                             % (image_set,))
        year, split = image_set.split('_', 1)
        if not year.isdigit():
            raise ValueError("PascalVOC image_set must start with a year, e.g. '2007_test', got %r" % image_set)
        if not os.path.isdir(devkit_path):
            raise FileNotFoundError('PascalVOC: devkit path not found: %s (config key '
                                    'dataset.dataset_path: put '
                                    'the data there or change the key)\nexpected layout:\n%s'
                                    % (devkit_path, self.layout_help))
        self.year = year
        self.use_07_metric = int(year) < 2010
        super().__init__('voc_' + year, split, split, root_path, devkit_path,
                         os.path.join(devkit_path, 'VOC' + year), VOC_CLASSES, result_path)

    # minimum side of a selective-search box (the original's config['min_size'])
    SS_MIN_SIZE = 2

    def selective_search_file(self):
        """``<root_path>/selective_search_data/<name>.mat`` (e.g. voc_2007_trainval.mat), as
        the original reads it."""
        return os.path.join(self.root_path, 'selective_search_data', self.name + '.mat')

    def load_selective_search_boxes(self):
        """Per image, the selective-search boxes x1, y1, x2, y2 (0-based): the file's
        1-based y1, x1, y2, x2 boxes reordered, duplicates and boxes under SS_MIN_SIZE
        removed, as the original's load_selective_search_roidb."""
        path = self.selective_search_file()
        if not os.path.isfile(path):
            raise FileNotFoundError(
                '%s: selective search proposals not found: %s (dataset.proposal: '
                'selective_search reads <root_path>/selective_search_data/<name>.mat)'
                % (self.name, path))
        import scipy.io
        try:
            raw = scipy.io.loadmat(path)['boxes'].ravel()
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise ValueError('%s: cannot read the selective search file %s (%s; expected a '
                             'MATLAB file with a cell array "boxes")' % (self.name, path, exc))
        if len(raw) != self.num_images:
            raise ValueError('%s: %s holds boxes of %d images, the image set has %d'
                             % (self.name, path, len(raw), self.num_images))
        box_list = []
        for i in range(len(raw)):
            boxes = np.asarray(raw[i], np.float64).reshape(-1, 4)[:, (1, 0, 3, 2)] - 1
            boxes = boxes[unique_boxes(boxes), :]
            boxes = boxes[filter_small_boxes(boxes, self.SS_MIN_SIZE), :]
            box_list.append(boxes.astype(np.float32))
        logger.info('loaded selective search boxes of %s from %s', self.name, path)
        return box_list

    def selective_search_roidb(self, gt_roidb, append_gt=False):
        """Roidb of the selective-search boxes (``dataset.proposal: selective_search``),
        after the ground truth with ``append_gt``."""
        roidb = self.create_roidb_from_box_list(self.load_selective_search_boxes(), gt_roidb)
        if append_gt:
            roidb = IMDB.merge_roidbs([dict(r) for r in gt_roidb], roidb)
        return roidb
