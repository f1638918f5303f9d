"""Datasets: PASCAL VOC, COCO, Cityscapes and the synthetic Shapes dataset."""
import logging

import numpy as np

from dcn.config import original_quirks

from .cityscapes import CityScape
from .coco import coco
from .imdb import IMDB, filter_roidb, merge_roidb
from .pascal_voc import PascalVOC
from .shapes import SHAPES_CLASSES, Shapes

logger = logging.getLogger(__name__)

_DATASETS = {'pascalvoc': PascalVOC, 'coco': coco, 'shapes': Shapes, 'cityscape': CityScape,
             'cityscapes': CityScape}

__all__ = ['IMDB', 'PascalVOC', 'coco', 'Shapes', 'CityScape', 'SHAPES_CLASSES', 'get_imdb',
           'load_gt_roidb', 'merge_roidb', 'filter_roidb']


def get_imdb(name, image_set, root_path, dataset_path, result_path=None):
    """Dataset ``name`` ('PascalVOC', 'coco', 'Shapes' or 'CityScape', case-insensitive) for one
    image set."""
    key = str(name).lower()
    if key not in _DATASETS:
        raise ValueError('unknown dataset %r (expected one of PascalVOC, coco, Shapes, CityScape)'
                         % (name,))
    return _DATASETS[key](image_set, root_path, dataset_path, result_path=result_path)


def load_gt_roidb(cfg, image_set_str, flip=False, result_path=None):
    """Roidb of '+'-combined image sets of ``cfg.dataset``; flipped copies appended if ``flip``.

    Returns (list of imdbs, merged roidb).
    """
    sets = [s.strip() for s in str(image_set_str).split('+') if s.strip()]
    if not sets:
        raise ValueError('image_set %r names no image set' % (image_set_str,))
    imdbs, roidbs = [], []
    for s in sets:
        imdb = get_imdb(cfg.dataset.dataset, s, cfg.dataset.root_path, cfg.dataset.dataset_path,
                        result_path=result_path)
        if imdb.num_classes != cfg.dataset.NUM_CLASSES:
            raise ValueError('dataset %s has %d classes (background included) but '
                             'dataset.NUM_CLASSES is %d' % (imdb.name, imdb.num_classes,
                                                            cfg.dataset.NUM_CLASSES))
        roidb = imdb.gt_roidb()
        if original_quirks(cfg):  # the original stores boxes as uint16: truncated
            roidb = [dict(r, boxes=np.trunc(np.asarray(r['boxes'], np.float64)).astype(
                np.float32)) for r in roidb]
        if flip:
            roidb = imdb.append_flipped_images(roidb)
        imdbs.append(imdb)
        roidbs.append(roidb)
    return imdbs, merge_roidb(roidbs)
