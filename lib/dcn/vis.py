"""Drawing on images with OpenCV: detections (and saving them as PNG files), and the sampling
geometry of the deformable modules (sampling points, deformable PS RoI pooling bins)."""
import os

import cv2
import numpy as np


def class_color(cls_index):
    """A stable, distinct BGR colour for a class index."""
    hue = (cls_index * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(hue * 179), 200, 255]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_detections(im, detections, class_names, thresh=0.5, scale=1.0, thickness=2):
    """Return a copy of BGR ``im`` with boxes, class names and scores drawn.

    ``detections[c]`` is a (k, 5) array x1, y1, x2, y2, score for class index c (index 0,
    the background, is skipped); boxes are divided by ``scale`` (use im_info's scale to draw
    on the original image). Only scores >= ``thresh`` are drawn.
    """
    if im is None or im.ndim != 3 or im.shape[2] != 3:
        raise ValueError('draw_detections: im must be an (H, W, 3) BGR image')
    if len(detections) > len(class_names):
        raise ValueError('draw_detections: %d detection lists but %d class names'
                         % (len(detections), len(class_names)))
    out = np.ascontiguousarray(im.copy())
    for c in range(1, len(detections)):
        dets = np.asarray(detections[c], dtype=np.float64)
        if dets.size == 0:
            continue
        color = class_color(c)
        for d in dets:
            if d[4] < thresh:
                continue
            x1, y1, x2, y2 = [int(round(v / scale)) for v in d[:4]]
            cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
            label = '%s %.2f' % (class_names[c], d[4])
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            ty = max(y1, th + base)
            cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
            cv2.putText(out, label, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return out


def save_detections(path, im, detections, class_names, thresh=0.5, scale=1.0):
    """Draw detections on ``im`` (BGR) and write a PNG to ``path``; returns the path."""
    path = os.fspath(path)
    if not path.lower().endswith('.png'):
        raise ValueError('save_detections: path must end with .png, got %s' % path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    drawn = draw_detections(im, detections, class_names, thresh=thresh, scale=scale)
    if not cv2.imwrite(path, drawn):
        raise IOError('cannot write image %s' % path)
    return path


# ------------------------------------------------------------------------------ deformable modules
def pixel_span(a, b):
    """First and last pixel whose centre lies in the interval [a, b] of pixel-centre
    coordinates (pixel i covers [i - 0.5, i + 0.5], so a box x1..x2 of inclusive pixels is
    [x1 - 0.5, x2 + 0.5]); the nearest pixel when the interval holds no centre."""
    first, last = int(np.ceil(a)), int(np.floor(b))
    if last < first:
        first = last = int(np.round(0.5 * (a + b)))
    return first, last


def _label(out, text, x, y, color):
    cv2.putText(out, text, (int(x), int(max(y, 12))), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                cv2.LINE_AA)


def draw_sampling_points(im, points_yx, unit_yx, label=None, radius=None):
    """Copy of BGR ``im`` with sampling points (red dots) and their activation unit (green
    dot, drawn last). Positions are (y, x) pixel-centre coordinates of ``im``; NaN rows (samples
    that do not read the map) are skipped."""
    if im is None or im.ndim != 3 or im.shape[2] != 3:
        raise ValueError('draw_sampling_points: im must be an (H, W, 3) BGR image')
    out = np.ascontiguousarray(im.copy())
    h, w = out.shape[:2]
    r = radius or max(1, int(round(min(h, w) / 250.0)))
    pts = np.asarray(points_yx, dtype=np.float64).reshape(-1, 2)
    for y, x in pts[~np.isnan(pts).any(axis=1)]:
        if -r <= x < w + r and -r <= y < h + r:
            cv2.circle(out, (int(round(x)), int(round(y))), r, (0, 0, 255), -1, cv2.LINE_AA)
    uy, ux = unit_yx
    cv2.circle(out, (int(round(ux)), int(round(uy))), 2 * r + 2, (0, 255, 0), -1)
    if label:
        _label(out, label, 4, 14, (0, 255, 0))
    return out


def draw_psroi_bins(im, roi, bins, keep, label=None):
    """Copy of BGR ``im`` with a RoI (yellow, ``roi`` x1, y1, x2, y2 inclusive pixels) and the
    bins ``bins[i, j]`` (x1, y1, x2, y2 pixel-centre coordinates of the region, as
    ``dcn.tools.demo.psroi_bins`` gives) for i, j in ``keep`` (red)."""
    if im is None or im.ndim != 3 or im.shape[2] != 3:
        raise ValueError('draw_psroi_bins: im must be an (H, W, 3) BGR image')
    out = np.ascontiguousarray(im.copy())
    x1, y1, x2, y2 = [int(round(v)) for v in roi[:4]]
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 255), 2)
    for i in keep:
        for j in keep:
            bx1, by1, bx2, by2 = bins[i, j]
            px1, px2 = pixel_span(bx1, bx2)
            py1, py2 = pixel_span(by1, by2)
            cv2.rectangle(out, (px1, py1), (px2, py2), (0, 0, 255), 1)
    if label:
        _label(out, label, x1, y1 - 4, (0, 255, 255))
    return out
