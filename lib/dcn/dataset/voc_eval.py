"""PASCAL VOC detection evaluation (average precision per class).

Boxes use the legacy pixel convention (inclusive corners). A detection is a true positive
when its IoU with an unmatched ground-truth box of its class exceeds the threshold; matches
to 'difficult' objects count neither as true nor as false positives, and difficult objects
are not counted as positives.
"""
import xml.etree.ElementTree as ET

import numpy as np


def parse_voc_xml(path):
    """Objects of a VOC annotation file: list of dicts name, difficult, bbox (0-based, inclusive),
    plus the image size as ``(width, height)`` (None when absent).

    Raises ValueError naming the file when it is malformed.
    """
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise FileNotFoundError('annotation file not found: %s' % path) from None
    except ET.ParseError as exc:
        raise ValueError('malformed annotation file %s: %s' % (path, exc)) from None
    root = tree.getroot()
    size = None
    sz = root.find('size')
    if sz is not None and sz.find('width') is not None and sz.find('height') is not None:
        try:
            size = (int(float(sz.find('width').text)), int(float(sz.find('height').text)))
        except (TypeError, ValueError):
            raise ValueError('malformed <size> in annotation file %s' % path) from None
    objs = []
    for i, obj in enumerate(root.findall('object')):
        name_el = obj.find('name')
        bb = obj.find('bndbox')
        if name_el is None or name_el.text is None or bb is None:
            raise ValueError('annotation file %s: object %d lacks <name> or <bndbox>' % (path, i))
        diff_el = obj.find('difficult')
        try:
            difficult = int(diff_el.text) if diff_el is not None and diff_el.text is not None else 0
            coords = [float(bb.find(t).text) - 1 for t in ('xmin', 'ymin', 'xmax', 'ymax')]
        except (AttributeError, TypeError, ValueError):
            raise ValueError('annotation file %s: object %d has a malformed <bndbox>/<difficult>'
                             % (path, i)) from None
        if coords[2] < coords[0] or coords[3] < coords[1]:
            raise ValueError('annotation file %s: object %d has xmax < xmin or ymax < ymin: %s'
                             % (path, i, [c + 1 for c in coords]))
        objs.append({'name': name_el.text.strip(), 'difficult': difficult, 'bbox': coords})
    return objs, size


def voc_ap(rec, prec, use_07_metric=False):
    """Average precision from recall/precision arrays.

    ``use_07_metric``: VOC2007 11-point interpolation (mean of the max precision at recall
    >= 0, 0.1, ..., 1); otherwise the area under the monotone precision envelope (VOC2010+).
    """
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        points = []
        for t in np.linspace(0.0, 1.0, 11):
            m = rec >= t - 1e-12
            points.append(prec[m].max() if np.any(m) else 0.0)
        return float(np.sum(points) / 11.0)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_eval_class(dets, gts, ovthresh=0.5, use_07_metric=False):
    """AP of one class.

    dets: list of (image_id, score, [x1, y1, x2, y2]);
    gts: dict image_id -> (boxes (K, 4), difficult (K,) bool) of this class.
    Returns (recall array, precision array, ap); ap is nan when the class has no
    non-difficult ground truth.
    """
    npos = 0
    gt_state = {}
    for img, (boxes, difficult) in gts.items():
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        difficult = np.asarray(difficult, dtype=bool).reshape(-1)
        npos += int((~difficult).sum())
        gt_state[img] = (boxes, difficult, np.zeros(len(boxes), dtype=bool))
    if npos == 0:
        return np.zeros(0), np.zeros(0), float('nan')
    if len(dets) == 0:
        return np.zeros(0), np.zeros(0), 0.0
    scores = np.array([d[1] for d in dets], dtype=np.float64)
    order = np.argsort(-scores, kind='stable')
    nd = len(dets)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for rank, di in enumerate(order):
        img, _, bb = dets[di]
        bb = np.asarray(bb, dtype=np.float64)
        if img not in gt_state:
            fp[rank] = 1
            continue
        gtb, diff, used = gt_state[img]
        ovmax = -np.inf
        jmax = -1
        if len(gtb):
            ixmin = np.maximum(gtb[:, 0], bb[0])
            iymin = np.maximum(gtb[:, 1], bb[1])
            ixmax = np.minimum(gtb[:, 2], bb[2])
            iymax = np.minimum(gtb[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inter = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) +
                   (gtb[:, 2] - gtb[:, 0] + 1.0) * (gtb[:, 3] - gtb[:, 1] + 1.0) - inter)
            ov = inter / uni
            jmax = int(np.argmax(ov))
            ovmax = ov[jmax]
        if ovmax > ovthresh:
            if diff[jmax]:
                continue
            if not used[jmax]:
                tp[rank] = 1
                used[jmax] = True
            else:
                fp[rank] = 1
        else:
            fp[rank] = 1
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, voc_ap(rec, prec, use_07_metric)
