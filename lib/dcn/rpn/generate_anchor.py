"""Reference anchors for the RPN (legacy pixel convention).

The base box is [0, 0, base_size - 1, base_size - 1]. For each aspect ratio r (= h / w) in
order, the base area is kept: w = round(sqrt(area / r)), h = round(w * r); then for each
scale s in order the box (w * s, h * s) is centred on the base box centre. The anchor of
ratio index i and scale index j therefore has index i * len(scales) + j.
"""
import numpy as np


def _centred_boxes(ws, hs, x_ctr, y_ctr):
    ws = np.asarray(ws, dtype=np.float64)
    hs = np.asarray(hs, dtype=np.float64)
    return np.stack([x_ctr - 0.5 * (ws - 1), y_ctr - 0.5 * (hs - 1),
                     x_ctr + 0.5 * (ws - 1), y_ctr + 0.5 * (hs - 1)], axis=1)


def generate_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32)):
    """Return an (len(ratios) * len(scales), 4) float array of anchors x1, y1, x2, y2."""
    ratios = np.asarray(ratios, dtype=np.float64).ravel()
    scales = np.asarray(scales, dtype=np.float64).ravel()
    if base_size <= 0:
        raise ValueError('base_size must be positive, got %r' % (base_size,))
    if ratios.size == 0 or np.any(ratios <= 0):
        raise ValueError('ratios must be a non-empty list of positive numbers, got %r' % (ratios.tolist(),))
    if scales.size == 0 or np.any(scales <= 0):
        raise ValueError('scales must be a non-empty list of positive numbers, got %r' % (scales.tolist(),))
    size = float(base_size)
    ctr = 0.5 * (size - 1)
    area = size * size
    # numpy rounding (half to even), as the released models were trained with
    ws = np.round(np.sqrt(area / ratios))
    hs = np.round(ws * ratios)
    out = []
    for w, h in zip(ws, hs):
        out.append(_centred_boxes(w * scales, h * scales, ctr, ctr))
    return np.vstack(out)


def generate_shifted_anchors(feat_height, feat_width, feat_stride, base_anchors):
    """All anchors over a feature map, ordered (y, x, anchor): shape (H * W * A, 4)."""
    shift_x = np.arange(feat_width) * feat_stride
    shift_y = np.arange(feat_height) * feat_stride
    sx, sy = np.meshgrid(shift_x, shift_y)
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
    a = base_anchors.shape[0]
    k = shifts.shape[0]
    return (base_anchors.reshape((1, a, 4)) + shifts.reshape((k, 1, 4))).reshape((k * a, 4))
