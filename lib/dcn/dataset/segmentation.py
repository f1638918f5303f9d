"""Semantic segmentation datasets: the segdb and its evaluation.

A segdb entry (dict) describes one image: ``image`` (path), ``seg_cls_path`` (path of the
label PNG: one class index per pixel, 255 = ignore), ``height``, ``width`` and ``flipped``
(bool: the entry is the horizontal mirror of the files, flipped when loaded), as the
original's ``gt_segdb``. :class:`SegmentationIMDB` is a mixin for an :class:`IMDB` whose
images have label PNGs: it adds ``gt_segdb()`` (cached under ``<root_path>/cache`` like the
roidb), ``append_flipped_images_for_segmentation``, ``evaluate_segmentations`` and the
colour palette of its result PNGs.

The original writes flipped copies of every image and label to disk (``*_flip.png``) and
appends entries pointing at them; here the flipped entries point at the original files and
the loader mirrors both arrays before resizing, which gives the same pixels without writing
into the dataset.
"""
import logging
import os

import numpy as np

from dcn.evaluation.sem_seg import SemSegEvaluator

logger = logging.getLogger(__name__)

IGNORE_LABEL = 255

__all__ = ['SegmentationIMDB', 'segmentation_imdb', 'load_gt_segdb', 'make_segdb_entry',
           'read_label', 'image_size', 'voc_palette', 'IGNORE_LABEL']


def make_segdb_entry(image, seg_cls_path, height, width, flipped=False):
    return {'image': image, 'seg_cls_path': seg_cls_path, 'height': int(height),
            'width': int(width), 'flipped': bool(flipped)}


def image_size(path):
    """(width, height) of an image file, read from its header."""
    from PIL import Image
    if not os.path.isfile(path):
        raise FileNotFoundError('image not found: %s' % path)
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:
        raise IOError('cannot read image %s (%s)' % (path, exc)) from None


def read_label(path, flipped=False):
    """Label PNG ``path`` as an (H, W) uint8 array of class indices (palette indices for
    palette PNGs such as VOC's, grey values otherwise); mirrored if ``flipped``."""
    from PIL import Image
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError('label image not found: %s' % path)
    try:
        with Image.open(path) as im:
            if im.mode not in ('P', 'L'):
                raise ValueError('label image %s has mode %s; expected a single-channel '
                                 '(L) or palette (P) PNG of class indices' % (path, im.mode))
            a = np.array(im)
    except ValueError:
        raise
    except Exception as exc:
        raise IOError('cannot decode label image %s (%s)' % (path, exc)) from None
    if flipped:
        a = np.ascontiguousarray(a[:, ::-1])
    return a


def voc_palette(num_cls=256):
    """The PASCAL VOC colour map (flat list of 3 * num_cls values), as ``get_pallete``."""
    pal = [0] * (num_cls * 3)
    for j in range(num_cls):
        lab, i = j, 0
        while lab > 0:
            pal[j * 3 + 0] |= ((lab >> 0) & 1) << (7 - i)
            pal[j * 3 + 1] |= ((lab >> 1) & 1) << (7 - i)
            pal[j * 3 + 2] |= ((lab >> 2) & 1) << (7 - i)
            i += 1
            lab >>= 3
    return pal


class SegmentationIMDB(object):
    """Mixin (listed before the IMDB base) for an IMDB with per-pixel labels. The class
    provides ``segmentation_path_from_index(index)`` (the label PNG's path) and may set
    ``seg_eval_resize`` ('gt_to_pred': the ground truth is resized to the prediction, as the
    original's VOC; 'pred_to_gt' as its Cityscapes) and override ``palette()``."""

    seg_eval_resize = 'gt_to_pred'
    ignore_label = IGNORE_LABEL

    def _segdb_sources(self):
        # the label files in image set order: a changed list or label gives a new signature
        return [self.segmentation_path_from_index(i) for i in self.image_set_index]

    def _load_segdb_entry(self, index):
        image = self.image_path_from_index(index)
        label = self.segmentation_path_from_index(index)
        if not os.path.isfile(label):
            raise FileNotFoundError('%s: label image not found: %s' % (self.name, label))
        w, h = image_size(image)
        lw, lh = image_size(label)
        if (lw, lh) != (w, h):
            raise ValueError('%s: label %s is %dx%d but image %s is %dx%d'
                             % (self.name, label, lw, lh, image, w, h))
        return make_segdb_entry(image, label, h, w)

    def gt_segdb(self):
        """Ground-truth segdb (list of dicts), from the cache when it is up to date."""
        return self._cached_gt_db(
            'segdb', self._segdb_sources(),
            lambda: [self._load_segdb_entry(i) for i in self.image_set_index], 'labels', logger)

    @staticmethod
    def append_flipped_images_for_segmentation(segdb):
        """``segdb`` followed by mirrored copies of its entries (``flipped`` toggled)."""
        flipped = [dict(rec, flipped=not rec.get('flipped', False)) for rec in segdb]
        logger.info('appended %d flipped images to the segdb', len(flipped))
        return list(segdb) + flipped

    # -- evaluation -------------------------------------------------------------------
    def palette(self):
        return voc_palette(256)

    def segmentation_results_dir(self):
        return os.path.join(self.result_path, self.name, 'segmentation')

    def write_segmentation_results(self, pred_segmentations):
        """One palette PNG ``<index>.png`` of class indices per image."""
        from PIL import Image
        d = self.segmentation_results_dir()
        os.makedirs(d, exist_ok=True)
        pal = self.palette()
        for index, pred in zip(self.image_set_index, pred_segmentations):
            im = Image.fromarray(np.uint8(np.squeeze(np.asarray(pred))))
            im.putpalette(pal)
            path = os.path.join(d, index + '.png')
            tmp = path + '.tmp.png'
            im.save(tmp)
            os.replace(tmp, path)
        logger.info('%s: segmentation results written to %s', self.name, d)
        return d

    def evaluate_segmentations(self, pred_segmentations, write=True):
        """mIoU of ``pred_segmentations`` (one (H, W) class map per image of the image set, in
        order, at the network's resolution); returns the dict of
        :meth:`dcn.evaluation.sem_seg.SemSegEvaluator.evaluate` and logs a table."""
        if len(pred_segmentations) != self.num_images:
            raise ValueError('%s: got %d predictions for %d images'
                             % (self.name, len(pred_segmentations), self.num_images))
        if write:
            self.write_segmentation_results(pred_segmentations)
        ev = SemSegEvaluator(self.num_classes, self.classes, self.ignore_label,
                             self.seg_eval_resize)
        for index, pred in zip(self.image_set_index, pred_segmentations):
            ev.process(read_label(self.segmentation_path_from_index(index)), pred)
        res = ev.evaluate()
        ev.log_table(res, title=self.name)
        return res


def segmentation_imdb(cfg, image_set, result_path=None):
    """The imdb of image set ``image_set`` of ``cfg.dataset``; it must have segmentation
    labels and ``cfg.dataset.NUM_CLASSES`` classes."""
    from . import get_imdb
    imdb = get_imdb(cfg.dataset.dataset, image_set, cfg.dataset.root_path,
                    cfg.dataset.dataset_path, result_path=result_path)
    if not isinstance(imdb, SegmentationIMDB):
        raise ValueError('dataset %s has no segmentation labels' % imdb.name)
    if imdb.num_classes != cfg.dataset.NUM_CLASSES:
        raise ValueError('dataset %s has %d classes but dataset.NUM_CLASSES is %d'
                         % (imdb.name, imdb.num_classes, cfg.dataset.NUM_CLASSES))
    return imdb


def load_gt_segdb(cfg, image_set_str, flip=False, result_path=None):
    """Segdb of the '+'-combined image sets of ``cfg.dataset``; mirrored copies appended if
    ``flip``. Returns (list of imdbs, merged segdb)."""
    sets = [s.strip() for s in str(image_set_str).split('+') if s.strip()]
    if not sets:
        raise ValueError('image_set %r names no image set' % (image_set_str,))
    imdbs, segdb = [], []
    for s in sets:
        imdb = segmentation_imdb(cfg, s, result_path)
        part = imdb.gt_segdb()
        if flip:
            part = imdb.append_flipped_images_for_segmentation(part)
        imdbs.append(imdb)
        segdb.extend(part)
    return imdbs, segdb
