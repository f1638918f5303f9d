"""Cityscapes semantic segmentation (``dataset: CityScape``), as the original's
``lib/dataset/cityscape.py``.

Expected layout (the official archives, with the ``*_labelTrainIds.png`` files made by the
official cityscapesScripts ``createTrainIdLabelImgs.py``)::

    <dataset_path>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <dataset_path>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png

``image_set`` is '<image folder>_<split>', e.g. 'leftImg8bit_train' or 'leftImg8bit_val'.
Labels are trainIds 0..18, 255 ignored; the code never maps label ids itself. Images are
the ``.png`` files found under the split folder (recursively, names ending in ``_flip.png``
skipped as in the original), sorted by name. The mIoU is computed at the ground truth's
resolution (the prediction is resized to it, nearest neighbour).
"""
import logging
import os

import numpy as np

from .imdb import IMDB
from .segmentation import SegmentationIMDB

logger = logging.getLogger(__name__)

CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                      'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
                      'truck', 'bus', 'train', 'motorcycle', 'bicycle')
# trainId -> Cityscapes labelId (used for colouring only, as the original's getpallete)
TRAIN_ID_TO_LABEL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
# colours of the Cityscapes labelIds 7..33 (cityscapesScripts labels.py)
_LABEL_COLOURS = {
    7: (128, 64, 128), 8: (244, 35, 232), 11: (70, 70, 70), 12: (102, 102, 156),
    13: (190, 153, 153), 17: (153, 153, 153), 19: (250, 170, 30), 20: (220, 220, 0),
    21: (107, 142, 35), 22: (152, 251, 152), 23: (70, 130, 180), 24: (220, 20, 60),
    25: (255, 0, 0), 26: (0, 0, 142), 27: (0, 0, 70), 28: (0, 60, 100), 31: (0, 80, 100),
    32: (0, 0, 230), 33: (119, 11, 32)}

LAYOUT_HELP = ('  <dataset_path>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png\n'
               '  <dataset_path>/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png')


class CityScape(SegmentationIMDB, IMDB):
    """Cityscapes fine annotations, 19 trainId classes."""

    seg_eval_resize = 'pred_to_gt'
    annotation_prefix = 'gtFine'

    def __init__(self, image_set, root_path, dataset_path, result_path=None):
        if '_' not in str(image_set):
            raise ValueError("CityScape image_set must be '<image folder>_<split>' (e.g. "
                             "'leftImg8bit_train'), got %r" % (image_set,))
        super().__init__('cityscape', image_set, root_path, dataset_path, result_path)
        self.image_folder, self.split = image_set.split('_', 1)
        self.data_path = self.dataset_path
        self.classes = list(CITYSCAPES_CLASSES)
        self.image_set_index = self._load_image_set_index()

    def _split_dir(self):
        return os.path.join(self.data_path, self.image_folder, self.split)

    def _load_image_set_index(self):
        d = self._split_dir()
        if not os.path.isdir(d):
            raise FileNotFoundError('%s: image folder not found: %s\nexpected layout:\n%s'
                                    % (self.name, d, LAYOUT_HELP))
        suffix = '_' + self.image_folder + '.png'
        index = []
        for parent, _dirs, files in os.walk(d):
            for fn in files:
                if fn.endswith('_flip.png') or not fn.endswith('.png'):
                    continue
                if not fn.endswith(suffix):
                    raise ValueError('%s: unexpected image name %s under %s (expected '
                                     '<city>_<seq>_<frame>%s)' % (self.name, fn, parent, suffix))
                index.append(fn[:-len(suffix)])
        if not index:
            raise ValueError('%s: no %s images under %s' % (self.name, suffix, d))
        return sorted(index)

    def image_path_from_index(self, index):
        city = index.split('_')[0]
        p = os.path.join(self._split_dir(), city, index + '_' + self.image_folder + '.png')
        if not os.path.isfile(p):
            raise FileNotFoundError('%s: image not found: %s' % (self.name, p))
        return p

    def segmentation_path_from_index(self, index):
        city = index.split('_')[0]
        return os.path.join(self.data_path, self.annotation_prefix, self.split, city,
                            index + '_' + self.annotation_prefix + '_labelTrainIds.png')

    def _annotation_sources(self):
        return self._segdb_sources()

    def gt_roidb(self):
        raise NotImplementedError('%s is a segmentation dataset without boxes; use gt_segdb()'
                                  % self.name)

    def evaluate_detections(self, all_boxes):
        raise NotImplementedError('%s is a segmentation dataset without boxes' % self.name)

    def palette(self):
        pal = np.zeros((256, 3), np.uint8)
        for t, lid in enumerate(TRAIN_ID_TO_LABEL_ID):
            pal[t] = _LABEL_COLOURS[lid]
        return pal.reshape(-1).tolist()
