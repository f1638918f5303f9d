"""Segmentation batches: image + label PNG -> network arrays, as the original DeepLab loader
(``lib/utils/image.py:get_segmentation_image``, ``deeplab/core/loader.py:parfetch``).

For each segdb entry (see :mod:`dcn.dataset.segmentation`): the image is read with OpenCV
(B,G,R) and the label PNG with PIL (class indices); a ``flipped`` entry mirrors both. Both
are resized so the short side is ``SCALES[i][0]`` and the long side at most ``SCALES[i][1]``
(bilinear for the image, nearest neighbour for the label; ``i`` drawn uniformly when several
scales are given); the B,G,R ``network.PIXEL_MEANS`` are subtracted and the channels put in
R,G,B order. Training with ``TRAIN.ENABLE_CROP`` then takes a
``TRAIN.CROP_HEIGHT`` x ``TRAIN.CROP_WIDTH`` window at a uniform random offset
(x first, then y, as the original) from both. One image per device.

Arrays: ``data`` (1, 3, H, W) float32, ``label`` (1, 1, H, W) float32 holding class ids and
255 (ignore), ``im_info`` [[H, W, scale]] float32 (size before cropping).
With ``network.IMAGE_STRIDE`` > 0 (no published DeepLab setting) the image is zero-padded at
the bottom/right and the label padded with 255, so padding is never scored.
"""
import cv2
import numpy as np

from .config import get_scales
from .dataset.segmentation import IGNORE_LABEL, read_label
from .image import imread, resize, transform

__all__ = ['get_segmentation_image', 'random_crop', 'get_segmentation_train_batch',
           'get_segmentation_test_batch']


def _pad_label(label, shape):
    if label.shape == shape:
        return label
    out = np.full(shape, IGNORE_LABEL, dtype=label.dtype)
    out[:label.shape[0], :label.shape[1]] = label
    return out


def get_segmentation_image(rec, cfg, rng=None, scale_index=None):
    """(data (1,3,H,W), label (1,1,H,W), im_info (3,)) of one segdb entry ``rec``."""
    for k in ('image', 'seg_cls_path'):
        if k not in rec:
            raise KeyError('segdb entry lacks %r: %r' % (k, rec))
    flipped = bool(rec.get('flipped', False))
    im = imread(rec['image'], flipped=flipped)
    label = read_label(rec['seg_cls_path'], flipped=flipped)
    if label.shape != im.shape[:2]:
        raise ValueError('label %s is %dx%d but image %s is %dx%d'
                         % (rec['seg_cls_path'], label.shape[1], label.shape[0], rec['image'],
                            im.shape[1], im.shape[0]))
    scales = get_scales(cfg)
    if scale_index is None:
        scale_index = int(rng.randint(len(scales))) if rng is not None else 0
    target, max_size = scales[scale_index]
    stride = int(cfg.network.IMAGE_STRIDE)
    im, scale = resize(im, target, max_size, stride=stride)
    resized, _ = resize(label, target, max_size, stride=0, interpolation=cv2.INTER_NEAREST)
    label = _pad_label(resized, im.shape[:2])
    data = transform(im, cfg.network.PIXEL_MEANS)
    label = label.astype(np.float32)[None, None]
    im_info = np.array([data.shape[2], data.shape[3], scale], dtype=np.float32)
    return data, label, im_info


def random_crop(data, label, crop_height, crop_width, rng):
    """Crop (…, H, W) ``data`` and ``label`` to ``crop_height`` x ``crop_width`` at a uniform
    random offset: ``sx = floor(u * (W - crop_width + 1))``, then ``sy`` likewise."""
    h, w = data.shape[2], data.shape[3]
    crop_height, crop_width = int(crop_height), int(crop_width)
    if crop_height <= 0 or crop_width <= 0:
        raise ValueError('TRAIN.CROP_HEIGHT / CROP_WIDTH must be positive, got %d x %d'
                         % (crop_height, crop_width))
    if h < crop_height or w < crop_width:
        raise ValueError('image of %dx%d (after resizing) is smaller than the crop '
                         'TRAIN.CROP_HEIGHT x CROP_WIDTH = %d x %d'
                         % (h, w, crop_height, crop_width))
    sx = int(np.floor(rng.random_sample() * (w - crop_width + 1)))
    sy = int(np.floor(rng.random_sample() * (h - crop_height + 1)))
    return (np.ascontiguousarray(data[:, :, sy:sy + crop_height, sx:sx + crop_width]),
            np.ascontiguousarray(label[:, :, sy:sy + crop_height, sx:sx + crop_width]))


def get_segmentation_train_batch(segdb, cfg, rng):
    """({'data', 'im_info'}, {'label'}) of one training image (``segdb`` holds one entry),
    cropped when ``TRAIN.ENABLE_CROP``."""
    if len(segdb) != 1:
        raise ValueError('one image per device: expected 1 segdb entry, got %d' % len(segdb))
    data, label, im_info = get_segmentation_image(segdb[0], cfg, rng)
    if cfg.TRAIN.get('ENABLE_CROP', False):
        data, label = random_crop(data, label, cfg.TRAIN.CROP_HEIGHT, cfg.TRAIN.CROP_WIDTH, rng)
    return {'data': data, 'im_info': im_info[None]}, {'label': label}


def get_segmentation_test_batch(segdb, cfg):
    """Lists, one per entry, of {'data', 'im_info'} and {'label'} for the whole (resized)
    frames (no crop, no flip beyond the entry's own flag), and the im_info list."""
    data, label, info = [], [], []
    for rec in segdb:
        d, lab, im_info = get_segmentation_image(rec, cfg, None, scale_index=0)
        data.append({'data': d, 'im_info': im_info[None]})
        label.append({'label': lab})
        info.append(im_info[None])
    return data, label, info
