"""Shapes: a synthetic detection and segmentation dataset, generated deterministically on
first use.

Images of filled shapes (ellipse, rectangle, triangle, star, cross) with varied size,
aspect ratio, rotation and colour on textured backgrounds with distractor strokes, 1-5
objects per image, some overlapping. It is written in VOC layout under ``dataset_path``::

    <dataset_path>/SHAPES_DATASET              marker (the generator only writes here)
    <dataset_path>/Annotations/<index>.xml
    <dataset_path>/ImageSets/Main/<image_set>.txt
    <dataset_path>/JPEGImages/<index>.jpg
    <dataset_path>/SegmentationClass/<index>.png   per-pixel class (version 2)
    <dataset_path>/ImageSets/Segmentation/<image_set>.txt

Image sets: ``train`` (600 images), ``test`` (200), ``minitrain`` (16), ``minitest`` (8);
each set is generated from its own seed, so every set is reproducible on its own. With the
background class, NUM_CLASSES = 6. Evaluation is VOC-style with the area metric.

Segmentation labels (generator version 2): one 8-bit single-channel PNG per image holding
the class index of every pixel (0 background, 1..5 as ``SHAPES_CLASSES``); where shapes
overlap, the one drawn last (on top) wins. Shapes are filled without anti-aliasing, so every
pixel belongs to exactly one class and no pixel is marked 255 (ignore), unlike VOC's boundary
bands; the anti-aliased distractor strokes are background. Version 2 draws exactly the
images and boxes of version 1 (the labels consume no random numbers); a version-1 dataset
(no ``ImageSets/Segmentation/<image_set>.txt``) is regenerated set by set on first use.

Generation writes into a temporary directory next to the dataset and moves the files in; the
image set list is written last, so an interrupted run is simply redone.
"""
import logging
import math
import os
import shutil
import tempfile

import cv2
import numpy as np

from .imdb import atomic_write_text
from .pascal_voc import VOCLayoutIMDB
from .segmentation import SegmentationIMDB

logger = logging.getLogger(__name__)

SHAPES_CLASSES = ('__background__', 'ellipse', 'rectangle', 'triangle', 'star', 'cross')
NUM_CLASSES = len(SHAPES_CLASSES)
GENERATOR_VERSION = 2
MARKER = 'SHAPES_DATASET'

# image set -> (number of images, seed)
IMAGE_SETS = {
    'train': (600, 1001),
    'test': (200, 2002),
    'minitrain': (16, 3003),
    'minitest': (8, 4004),
}
IMAGE_SIZE_RANGE = (256, 320)     # each side drawn independently in this range
OBJECT_SIZE_RANGE = (28, 120)     # longer side of an object's box before rotation, pixels
MAX_OBJECTS = 5


def _background(rng, h, w):
    """Smooth random colour field + noise + a few thin distractor strokes."""
    c0 = rng.uniform(20, 235, size=3)
    c1 = rng.uniform(20, 235, size=3)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    im = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    # low-frequency blotches
    small = rng.normal(0, 18, size=(max(h // 32, 2), max(w // 32, 2), 3)).astype(np.float32)
    im += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    # fine grain texture
    im += rng.normal(0, rng.uniform(3, 12), size=(h, w, 3))
    im = np.clip(im, 0, 255).astype(np.uint8)
    for _ in range(int(rng.randint(2, 7))):
        p1 = (int(rng.randint(0, w)), int(rng.randint(0, h)))
        p2 = (int(rng.randint(0, w)), int(rng.randint(0, h)))
        col = tuple(int(v) for v in rng.uniform(0, 255, size=3))
        cv2.line(im, p1, p2, col, int(rng.randint(1, 3)), cv2.LINE_AA)
    return im


def _rotate(pts, ang, cx, cy):
    c, s = math.cos(ang), math.sin(ang)
    x = pts[:, 0] * c - pts[:, 1] * s + cx
    y = pts[:, 0] * s + pts[:, 1] * c + cy
    return np.stack([x, y], axis=1)


def _shape_polygon(cls, rng, size, cx, cy):
    """Polygon (N, 2) of a shape of class ``cls`` with its longer side about ``size``."""
    ang = rng.uniform(0, 2 * np.pi)
    if cls == 'ellipse':
        ar = rng.uniform(0.5, 1.0)
        a, b = size / 2.0, size * ar / 2.0
        th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        pts = np.stack([a * np.cos(th), b * np.sin(th)], axis=1)
    elif cls == 'rectangle':
        ar = rng.uniform(0.45, 1.0)
        a, b = size / 2.0, size * ar / 2.0
        pts = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
        ang = rng.uniform(-np.pi / 4, np.pi / 4)
    elif cls == 'triangle':
        ar = rng.uniform(0.7, 1.2)
        a = size / 2.0
        pts = np.array([[0, -a * ar], [a, a * ar * 0.75], [-a, a * ar * 0.75]])
    elif cls == 'star':
        r_out = size / 2.0
        r_in = r_out * rng.uniform(0.38, 0.5)
        th = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, r_out, r_in)
        pts = np.stack([r * np.cos(th), r * np.sin(th) * rng.uniform(0.8, 1.0)], axis=1)
    elif cls == 'cross':
        a = size / 2.0
        t = a * rng.uniform(0.28, 0.4)
        pts = np.array([[-t, -a], [t, -a], [t, -t], [a, -t], [a, t], [t, t], [t, a], [-t, a],
                        [-t, t], [-a, t], [-a, -t], [-t, -t]])
        ang = rng.uniform(-np.pi / 4, np.pi / 4)
    else:  # pragma: no cover
        raise ValueError('unknown shape class %r' % cls)
    return _rotate(pts.astype(np.float64), ang, cx, cy)


def _iou_and_cover(b, others):
    """IoU of box b with each of others, and the fraction of each other box covered by b."""
    if not others:
        return np.zeros(0), np.zeros(0)
    o = np.asarray(others, dtype=np.float64)
    iw = np.maximum(np.minimum(b[2], o[:, 2]) - np.maximum(b[0], o[:, 0]) + 1, 0)
    ih = np.maximum(np.minimum(b[3], o[:, 3]) - np.maximum(b[1], o[:, 1]) + 1, 0)
    inter = iw * ih
    ab = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    ao = (o[:, 2] - o[:, 0] + 1) * (o[:, 3] - o[:, 1] + 1)
    return inter / (ab + ao - inter), inter / ao


def render_image(rng):
    """One random image: (BGR uint8 image, boxes (K, 4) inclusive pixels, class names)."""
    im, boxes, names, _ = render_image_and_labels(rng)
    return im, boxes, names


def render_image_and_labels(rng):
    """As :func:`render_image`, plus the (H, W) uint8 map of each pixel's class index."""
    h = int(rng.randint(IMAGE_SIZE_RANGE[0], IMAGE_SIZE_RANGE[1] + 1))
    w = int(rng.randint(IMAGE_SIZE_RANGE[0], IMAGE_SIZE_RANGE[1] + 1))
    im = _background(rng, h, w)
    labels = np.zeros((h, w), dtype=np.uint8)
    n = int(rng.randint(1, MAX_OBJECTS + 1))
    boxes, names = [], []
    for _ in range(n):
        for _attempt in range(30):
            cls = SHAPES_CLASSES[int(rng.randint(1, NUM_CLASSES))]
            size = float(np.exp(rng.uniform(np.log(OBJECT_SIZE_RANGE[0]), np.log(OBJECT_SIZE_RANGE[1]))))
            cx = rng.uniform(size * 0.3, w - size * 0.3)
            cy = rng.uniform(size * 0.3, h - size * 0.3)
            poly = _shape_polygon(cls, rng, size, cx, cy)
            mask = np.zeros((h, w), dtype=np.uint8)
            cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_8, shift=4)
            ys, xs = np.nonzero(mask)
            if xs.size < 120:
                continue
            box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
            # a shape must lie mostly inside the image
            if xs.size < 0.6 * _polygon_area(poly):
                continue
            iou, cover = _iou_and_cover(box, boxes)
            if iou.size and (iou.max() > 0.3 or cover.max() > 0.35):
                continue
            region = im[mask > 0].astype(np.float64).mean(axis=0)
            for _c in range(20):
                col = rng.uniform(0, 255, size=3)
                if np.abs(col - region).sum() > 150:
                    break
            shade = im.copy()
            shade[mask > 0] = col.astype(np.uint8)
            # slight lighting gradient inside the object
            im = np.where(mask[..., None] > 0,
                          np.clip(shade.astype(np.float64) + rng.normal(0, 4, size=shade.shape), 0, 255),
                          im).astype(np.uint8)
            labels[mask > 0] = SHAPES_CLASSES.index(cls)
            boxes.append(box)
            names.append(cls)
            break
    if not boxes:
        return render_image_and_labels(rng)
    return im, np.array(boxes, dtype=np.float64), names, labels


def _polygon_area(poly):
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _annotation_xml(index, w, h, boxes, names):
    objs = []
    for b, n in zip(boxes, names):
        objs.append('  <object>\n    <name>%s</name>\n    <pose>Unspecified</pose>\n'
                    '    <truncated>0</truncated>\n    <difficult>0</difficult>\n'
                    '    <bndbox>\n      <xmin>%d</xmin>\n      <ymin>%d</ymin>\n'
                    '      <xmax>%d</xmax>\n      <ymax>%d</ymax>\n    </bndbox>\n  </object>\n'
                    % (n, b[0] + 1, b[1] + 1, b[2] + 1, b[3] + 1))
    return ('<annotation>\n  <folder>Shapes</folder>\n  <filename>%s.jpg</filename>\n'
            '  <size>\n    <width>%d</width>\n    <height>%d</height>\n    <depth>3</depth>\n  </size>\n'
            '%s</annotation>\n' % (index, w, h, ''.join(objs)))


def _marker_text():
    return 'Shapes synthetic detection dataset, generator version %d\n' % GENERATOR_VERSION


def generate_shapes(dataset_path, image_set):
    """Generate ``image_set`` of the Shapes dataset under ``dataset_path`` (if not present).

    A set is complete when both its detection list ``ImageSets/Main/<set>.txt`` and its
    segmentation list ``ImageSets/Segmentation/<set>.txt`` exist; a set made by generator
    version 1 (detection only) is generated again, which rewrites the same images and
    annotations and adds the label PNGs.
    """
    if image_set not in IMAGE_SETS:
        raise ValueError('Shapes image_set must be one of %s, got %r' % (sorted(IMAGE_SETS), image_set))
    set_file = os.path.join(dataset_path, 'ImageSets', 'Main', image_set + '.txt')
    seg_set_file = os.path.join(dataset_path, 'ImageSets', 'Segmentation', image_set + '.txt')
    marker = os.path.join(dataset_path, MARKER)
    if os.path.isfile(set_file) and os.path.isfile(seg_set_file):
        return set_file
    if os.path.isdir(dataset_path) and os.listdir(dataset_path) and not os.path.isfile(marker):
        raise FileExistsError('Shapes: %s exists, is not empty and is not a Shapes dataset (no %s '
                              'marker); refusing to write into it -- choose another dataset_path'
                              % (dataset_path, MARKER))
    n, seed = IMAGE_SETS[image_set]
    if os.path.isfile(set_file):
        logger.info('Shapes: %s was made by an older generator; generating it again (version %d, '
                    'same images, with segmentation labels)', image_set, GENERATOR_VERSION)
    logger.info('Shapes: generating %s (%d images) under %s', image_set, n, dataset_path)
    os.makedirs(dataset_path, exist_ok=True)
    with_marker = os.path.isfile(marker)
    if not with_marker or open(marker).read() != _marker_text():
        atomic_write_text(marker, _marker_text())
    tmp = tempfile.mkdtemp(prefix='.gen-%s-' % image_set, dir=dataset_path)
    subs = ('Annotations', 'JPEGImages', 'SegmentationClass')
    try:
        rng = np.random.RandomState(seed)
        for sub in subs:
            os.makedirs(os.path.join(tmp, sub))
        index = []
        for i in range(n):
            name = '%s_%05d' % (image_set, i)
            im, boxes, names, labels = render_image_and_labels(rng)
            if not cv2.imwrite(os.path.join(tmp, 'JPEGImages', name + '.jpg'), im,
                               [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise IOError('Shapes: cannot write image under %s' % tmp)
            if not cv2.imwrite(os.path.join(tmp, 'SegmentationClass', name + '.png'), labels):
                raise IOError('Shapes: cannot write label image under %s' % tmp)
            with open(os.path.join(tmp, 'Annotations', name + '.xml'), 'w') as f:
                f.write(_annotation_xml(name, im.shape[1], im.shape[0], boxes, names))
            index.append(name)
        for sub in subs:
            dst = os.path.join(dataset_path, sub)
            os.makedirs(dst, exist_ok=True)
            for fn in os.listdir(os.path.join(tmp, sub)):
                os.replace(os.path.join(tmp, sub, fn), os.path.join(dst, fn))
        listing = ''.join(s + '\n' for s in index)
        atomic_write_text(set_file, listing)
        atomic_write_text(seg_set_file, listing)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return set_file


class Shapes(SegmentationIMDB, VOCLayoutIMDB):
    """The synthetic Shapes dataset (VOC layout, area metric, generated on first use); its
    segmentation labels are scored as VOC's (ground truth resized to the prediction)."""

    use_07_metric = False
    layout_help = ('  <dataset_path>/SHAPES_DATASET\n'
                   '  <dataset_path>/Annotations/<index>.xml\n'
                   '  <dataset_path>/ImageSets/Main/<image_set>.txt\n'
                   '  <dataset_path>/JPEGImages/<index>.jpg\n'
                   '  <dataset_path>/SegmentationClass/<index>.png')

    def __init__(self, image_set, root_path, dataset_path, result_path=None):
        dataset_path = os.fspath(dataset_path)
        generate_shapes(dataset_path, image_set)
        super().__init__('shapes', image_set, image_set, root_path, dataset_path, dataset_path,
                         SHAPES_CLASSES, result_path)
