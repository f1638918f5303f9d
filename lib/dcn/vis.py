"""Drawing detections on images and saving them as PNG files (OpenCV)."""
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
