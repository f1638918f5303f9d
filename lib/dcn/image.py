"""Image reading, resizing, mean subtraction and batching.

Conventions of the released models: images are read as B,G,R (OpenCV order), resized so
the short side is SCALES[0] and the long side at most SCALES[1]; ``PIXEL_MEANS`` are listed
in B,G,R order and subtracted per channel; the network tensor holds R,G,B channels, no
division by a standard deviation. ``im_info`` = [resized height, resized width, scale].
"""
import os

import cv2
import numpy as np

from .bbox import clip_boxes
from .config import get_scales, original_quirks


def imread(path, flipped=False):
    """Read ``path`` as an (H, W, 3) uint8 BGR array; mirror it horizontally if ``flipped``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError('image not found: %s' % path)
    im = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if im is None:
        raise IOError('cannot decode image (corrupt or unsupported format): %s' % path)
    if flipped:
        im = np.ascontiguousarray(im[:, ::-1, :])
    return im


def resize(im, target_size, max_size, stride=0, interpolation=cv2.INTER_LINEAR):
    """Scale ``im`` so its short side is ``target_size`` and its long side at most ``max_size``.

    With ``stride`` > 0 the result is zero-padded at the bottom/right to multiples of
    ``stride``. Returns (resized image, scale factor).
    """
    if im is None or im.ndim < 2 or im.shape[0] == 0 or im.shape[1] == 0:
        raise ValueError('resize: im must be a non-empty (H, W[, C]) array, got %s'
                         % (None if im is None else im.shape,))
    if target_size <= 0 or max_size <= 0:
        raise ValueError('resize: target_size and max_size must be positive, got %r, %r'
                         % (target_size, max_size))
    short = min(im.shape[:2])
    long_ = max(im.shape[:2])
    scale = float(target_size) / float(short)
    if np.round(scale * long_) > max_size:
        scale = float(max_size) / float(long_)
    im = cv2.resize(im, None, None, fx=scale, fy=scale, interpolation=interpolation)
    if stride and stride > 0:
        h = int(np.ceil(im.shape[0] / float(stride)) * stride)
        w = int(np.ceil(im.shape[1] / float(stride)) * stride)
        padded = np.zeros((h, w) + im.shape[2:], dtype=im.dtype)
        padded[:im.shape[0], :im.shape[1]] = im
        im = padded
    return im, scale


def transform(im, pixel_means):
    """(H, W, 3) BGR image -> (1, 3, H, W) float32 tensor in R,G,B order minus the means.

    ``pixel_means`` are in B,G,R order.
    """
    pixel_means = np.asarray(pixel_means, dtype=np.float32).ravel()
    if im.ndim != 3 or im.shape[2] != 3:
        raise ValueError('transform: im must be (H, W, 3) BGR, got shape %s' % (im.shape,))
    if pixel_means.size != 3:
        raise ValueError('transform: pixel_means must have 3 values (B, G, R), got %r' % (pixel_means,))
    bgr = im.astype(np.float32) - pixel_means[None, None, :]
    return np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)[None])


def transform_inverse(im_tensor, pixel_means):
    """Inverse of :func:`transform`: (1, 3, H, W) or (3, H, W) tensor -> (H, W, 3) uint8 BGR."""
    t = np.asarray(im_tensor)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError('transform_inverse: expected a single image, got batch of %d' % t.shape[0])
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError('transform_inverse: expected (1, 3, H, W) or (3, H, W), got %s'
                         % (np.shape(im_tensor),))
    pixel_means = np.asarray(pixel_means, dtype=np.float32).ravel()
    bgr = t.transpose(1, 2, 0)[:, :, ::-1] + pixel_means[None, None, :]
    return np.clip(np.round(bgr), 0, 255).astype(np.uint8)


def tensor_vstack(tensor_list, pad=0):
    """Stack arrays along axis 0, padding every other axis to the largest size with ``pad``."""
    if len(tensor_list) == 0:
        raise ValueError('tensor_vstack: tensor_list is empty')
    ndim = tensor_list[0].ndim
    for t in tensor_list:
        if t.ndim != ndim:
            raise ValueError('tensor_vstack: all tensors must have %d dims, got %s' % (ndim, t.shape))
    if len(tensor_list) == 1:
        return np.array(tensor_list[0])
    shape = [sum(t.shape[0] for t in tensor_list)] + \
        [max(t.shape[d] for t in tensor_list) for d in range(1, ndim)]
    out = np.full(shape, pad, dtype=tensor_list[0].dtype)
    i = 0
    for t in tensor_list:
        sl = (slice(i, i + t.shape[0]),) + tuple(slice(0, s) for s in t.shape[1:])
        out[sl] = t
        i += t.shape[0]
    return out


def _process(roi_rec, cfg, scale):
    im = imread(roi_rec['image'], flipped=roi_rec.get('flipped', False))
    if im.shape[0] != roi_rec.get('height', im.shape[0]) or im.shape[1] != roi_rec.get('width', im.shape[1]):
        raise ValueError('image %s is %dx%d but its roidb entry says %dx%d (stale cache?)'
                         % (roi_rec['image'], im.shape[1], im.shape[0], roi_rec['width'], roi_rec['height']))
    target, max_size = scale
    im, im_scale = resize(im, target, max_size, stride=cfg.network.IMAGE_STRIDE)
    tensor = transform(im, cfg.network.PIXEL_MEANS)
    h, w = tensor.shape[2], tensor.shape[3]
    new_rec = dict(roi_rec)
    new_rec['im_info'] = np.array([h, w, im_scale], dtype=np.float32)
    if 'boxes' in roi_rec:
        new_rec['boxes'] = np.asarray(roi_rec['boxes'], dtype=np.float32) * im_scale
    return tensor, new_rec, im_scale


def get_image(roidb, cfg, scale_index=0):
    """Load, flip, resize and normalise the images of ``roidb``.

    Returns (list of (1, 3, H, W) float32 tensors, list of new roidb entries with
    ``im_info`` = [H, W, scale] and ``boxes`` scaled).
    """
    scales = get_scales(cfg)
    if not 0 <= scale_index < len(scales):
        raise IndexError('scale_index %d out of range for SCALES %r' % (scale_index, cfg.SCALES))
    ims, recs = [], []
    for roi_rec in roidb:
        t, rec, _ = _process(roi_rec, cfg, scales[scale_index])
        ims.append(t)
        recs.append(rec)
    return ims, recs


def get_train_rec(roi_rec, cfg, scale_index):
    """(tensor, new roidb entry with ``im_info`` and every box scaled) for training at
    ``SCALES[scale_index]``; with TRAIN.ORIGINAL_QUIRKS the scaled boxes are rounded and
    clipped as the original."""
    scales = get_scales(cfg)
    tensor, rec, im_scale = _process(roi_rec, cfg, scales[scale_index])
    if original_quirks(cfg):  # the original rounds the scaled boxes and clips them
        boxes = np.round(np.asarray(roi_rec['boxes'], dtype=np.float64) * im_scale)
        rec['boxes'] = clip_boxes(boxes, rec['im_info'][:2]).astype(np.float32)
    return tensor, rec


def get_train_image(roi_rec, cfg, scale_index=None, rng=None):
    """Image and ground truth of one roidb entry for training.

    ``scale_index`` picks one of ``SCALES`` (random with ``rng`` when None).
    Returns (tensor (1, 3, H, W) float32, im_info (3,) float32, gt_boxes (K, 5) float32 with
    x1, y1, x2, y2 scaled to the resized image and the class index).
    """
    scales = get_scales(cfg)
    if scale_index is None:
        rng = np.random if rng is None else rng
        scale_index = int(rng.randint(0, len(scales)))
    if not 0 <= scale_index < len(scales):
        raise IndexError('scale_index %d out of range for SCALES %r' % (scale_index, cfg.SCALES))
    tensor, rec = get_train_rec(roi_rec, cfg, scale_index)
    gt_inds = np.where(np.asarray(roi_rec['gt_classes']) != 0)[0]
    gt_boxes = np.empty((len(gt_inds), 5), dtype=np.float32)
    gt_boxes[:, :4] = rec['boxes'][gt_inds, :4]
    gt_boxes[:, 4] = np.asarray(roi_rec['gt_classes'])[gt_inds]
    return tensor, rec['im_info'], gt_boxes
