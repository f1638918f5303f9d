"""Box regression targets, decoding and clipping (legacy pixel convention).

A box is x1, y1, x2, y2 with inclusive corners: width = x2 - x1 + 1 and
centre = x1 + 0.5 * (width - 1). Deltas are (dx, dy, dw, dh): centre shift in units
of the source box size and log size ratio.
"""
import numpy as np

from .cython_bbox import bbox_overlaps_cython


def _as_boxes(a, name):
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] < 4:
        raise ValueError('%s must be an (N, 4) array of boxes, got shape %s' % (name, a.shape))
    return a


def bbox_overlaps(boxes, query_boxes):
    """IoU matrix (N, K) between ``boxes`` (N, 4) and ``query_boxes`` (K, 4) (Cython)."""
    boxes = _as_boxes(boxes, 'boxes')
    query_boxes = _as_boxes(query_boxes, 'query_boxes')
    return bbox_overlaps_cython(np.ascontiguousarray(boxes[:, :4], dtype=np.float64),
                                np.ascontiguousarray(query_boxes[:, :4], dtype=np.float64))


def bbox_overlaps_py(boxes, query_boxes):
    """Numpy implementation of :func:`bbox_overlaps` (reference and fallback)."""
    boxes = _as_boxes(boxes, 'boxes').astype(np.float64)
    query_boxes = _as_boxes(query_boxes, 'query_boxes').astype(np.float64)
    b_area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    q_area = (query_boxes[:, 2] - query_boxes[:, 0] + 1) * (query_boxes[:, 3] - query_boxes[:, 1] + 1)
    iw = (np.minimum(boxes[:, None, 2], query_boxes[None, :, 2]) -
          np.maximum(boxes[:, None, 0], query_boxes[None, :, 0]) + 1)
    ih = (np.minimum(boxes[:, None, 3], query_boxes[None, :, 3]) -
          np.maximum(boxes[:, None, 1], query_boxes[None, :, 1]) + 1)
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = b_area[:, None] + q_area[None, :] - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        ov = np.where((inter > 0) & (union > 0), inter / union, 0.0)
    return ov


def clip_boxes(boxes, im_shape):
    """Clip boxes (N, 4*k) to the image: x in [0, width-1], y in [0, height-1].

    ``im_shape`` is (height, width, ...). Returns a new array of the input dtype.
    """
    boxes = np.array(boxes, copy=True)
    if boxes.ndim != 2 or boxes.shape[1] % 4 != 0:
        raise ValueError('boxes must be an (N, 4*k) array, got shape %s' % (boxes.shape,))
    h, w = float(im_shape[0]), float(im_shape[1])
    boxes[:, 0::4] = np.clip(boxes[:, 0::4], 0, w - 1)
    boxes[:, 1::4] = np.clip(boxes[:, 1::4], 0, h - 1)
    boxes[:, 2::4] = np.clip(boxes[:, 2::4], 0, w - 1)
    boxes[:, 3::4] = np.clip(boxes[:, 3::4], 0, h - 1)
    return boxes


def filter_boxes(boxes, min_size):
    """Indices of boxes whose width and height are both >= ``min_size``."""
    ws = boxes[:, 2] - boxes[:, 0] + 1
    hs = boxes[:, 3] - boxes[:, 1] + 1
    return np.where((ws >= min_size) & (hs >= min_size))[0]


def bbox_transform(ex_rois, gt_rois):
    """Regression targets (N, 4) mapping ``ex_rois`` onto ``gt_rois`` (both (N, 4))."""
    ex_rois = _as_boxes(ex_rois, 'ex_rois')
    gt_rois = _as_boxes(gt_rois, 'gt_rois')
    if ex_rois.shape[0] != gt_rois.shape[0]:
        raise ValueError('ex_rois and gt_rois must have the same number of rows (%d vs %d)'
                         % (ex_rois.shape[0], gt_rois.shape[0]))
    ex_w = ex_rois[:, 2] - ex_rois[:, 0] + 1.0
    ex_h = ex_rois[:, 3] - ex_rois[:, 1] + 1.0
    ex_cx = ex_rois[:, 0] + 0.5 * (ex_w - 1.0)
    ex_cy = ex_rois[:, 1] + 0.5 * (ex_h - 1.0)
    gt_w = gt_rois[:, 2] - gt_rois[:, 0] + 1.0
    gt_h = gt_rois[:, 3] - gt_rois[:, 1] + 1.0
    gt_cx = gt_rois[:, 0] + 0.5 * (gt_w - 1.0)
    gt_cy = gt_rois[:, 1] + 0.5 * (gt_h - 1.0)
    dx = (gt_cx - ex_cx) / (ex_w + 1e-14)
    dy = (gt_cy - ex_cy) / (ex_h + 1e-14)
    dw = np.log(gt_w / ex_w)
    dh = np.log(gt_h / ex_h)
    return np.vstack((dx, dy, dw, dh)).transpose()


def bbox_pred(boxes, box_deltas):
    """Decode deltas (N, 4*k) relative to ``boxes`` (N, 4) into boxes (N, 4*k)."""
    boxes = np.asarray(boxes)
    box_deltas = np.asarray(box_deltas)
    if boxes.shape[0] == 0:
        return np.zeros((0, box_deltas.shape[1] if box_deltas.ndim == 2 else 4), dtype=box_deltas.dtype)
    if box_deltas.ndim != 2 or box_deltas.shape[1] % 4 != 0 or box_deltas.shape[0] != boxes.shape[0]:
        raise ValueError('box_deltas must be (N, 4*k) with N = %d, got %s' % (boxes.shape[0], box_deltas.shape))
    boxes = boxes.astype(np.float64, copy=False)
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x = boxes[:, 0] + 0.5 * (widths - 1.0)
    ctr_y = boxes[:, 1] + 0.5 * (heights - 1.0)
    dx = box_deltas[:, 0::4]
    dy = box_deltas[:, 1::4]
    dw = box_deltas[:, 2::4]
    dh = box_deltas[:, 3::4]
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = np.exp(dw) * widths[:, None]
    pred_h = np.exp(dh) * heights[:, None]
    out = np.zeros(box_deltas.shape, dtype=np.result_type(box_deltas.dtype, np.float32))
    out[:, 0::4] = pred_ctr_x - 0.5 * (pred_w - 1.0)
    out[:, 1::4] = pred_ctr_y - 0.5 * (pred_h - 1.0)
    out[:, 2::4] = pred_ctr_x + 0.5 * (pred_w - 1.0)
    out[:, 3::4] = pred_ctr_y + 0.5 * (pred_h - 1.0)
    return out


def nonlinear_transform(ex_rois, gt_rois):
    """Alias of :func:`bbox_transform` (name used by the original code base)."""
    return bbox_transform(ex_rois, gt_rois)


def nonlinear_pred(boxes, box_deltas):
    """Alias of :func:`bbox_pred` (name used by the original code base)."""
    return bbox_pred(boxes, box_deltas)
