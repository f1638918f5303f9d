"""Non-maximum suppression: numpy reference, Cython CPU, soft-NMS and the GPU entry point.

Each ``*_wrapper`` returns a function ``f(dets) -> keep`` where ``dets`` is an (N, 5)
array (x1, y1, x2, y2, score) and ``keep`` the list of indices into ``dets`` that survive,
highest score first. Equal scores are taken in the original's order: NumPy's default
``scores.argsort()[::-1]``. As in the original, :func:`py_nms` keeps a box whose IoU with a
kept box is at most ``thresh`` and ``cpu_nms`` drops a box at ``thresh`` or above (they
differ only for an IoU exactly equal to ``thresh``).
"""
import numpy as np

from .cpu_nms import cpu_nms, cpu_soft_nms

SOFT_NMS_METHODS = {'hard': 0, 'linear': 1, 'gaussian': 2}


def _check_dets(dets):
    dets = np.asarray(dets)
    if dets.ndim != 2 or (dets.shape[0] > 0 and dets.shape[1] < 5):
        raise ValueError('dets must be an (N, 5) array [x1, y1, x2, y2, score], got shape %s'
                         % (dets.shape,))
    return dets


def _check_thresh(thresh):
    thresh = float(thresh)
    if not 0.0 <= thresh <= 1.0:
        raise ValueError('thresh must be in [0, 1], got %r' % thresh)
    return thresh


def py_nms(dets, thresh):
    """Greedy NMS in numpy, the original's ``nms``: keep the highest box, drop the boxes
    with IoU > ``thresh`` (computed in the dtype of ``dets``)."""
    dets = _check_dets(dets)
    if dets.shape[0] == 0:
        return []
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][ovr <= thresh]
    return keep


def py_nms_wrapper(thresh):
    """``f(dets) -> keep`` using :func:`py_nms`."""
    thresh = _check_thresh(thresh)

    def _nms(dets):
        return py_nms(dets, thresh)
    return _nms


def cpu_nms_wrapper(thresh):
    """``f(dets) -> keep`` using the Cython CPU NMS."""
    thresh = _check_thresh(thresh)

    def _nms(dets):
        dets = _check_dets(dets)
        if dets.shape[0] == 0:
            return []
        return cpu_nms(np.ascontiguousarray(dets[:, :5], dtype=np.float32), thresh)
    return _nms


def soft_nms(dets, thresh=0.3, method='linear', sigma=0.5, score_thresh=0.001):
    """Soft-NMS. Returns (keep indices, rescored scores) in selection order.

    ``method``: 'linear' (score *= 1 - IoU above ``thresh``), 'gaussian'
    (score *= exp(-IoU^2 / sigma)) or 'hard'. Boxes rescored below ``score_thresh`` are dropped.
    """
    dets = _check_dets(dets)
    if method not in SOFT_NMS_METHODS:
        raise ValueError("method must be one of %s, got %r" % (sorted(SOFT_NMS_METHODS), method))
    if sigma <= 0:
        raise ValueError('sigma must be positive, got %r' % sigma)
    if dets.shape[0] == 0:
        return [], np.zeros((0,), dtype=np.float32)
    return cpu_soft_nms(np.ascontiguousarray(dets[:, :5], dtype=np.float32), float(sigma),
                        _check_thresh(thresh), float(score_thresh), SOFT_NMS_METHODS[method])


def original_soft_nms(dets, sigma, max_dets=-1):
    """The original FPN tester's soft-NMS (its ``lib/nms/nms.py:soft_nms``): Gaussian
    (every remaining score times exp(-IoU^2 / ``sigma``), IoU with the +1 convention), no
    score cut-off, at most ``max_dets`` boxes (-1: all), the order of equal scores numpy's
    default ``argsort`` reversed. Returns (keep indices in selection order, their rescored
    scores)."""
    dets = _check_dets(dets)
    if dets.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64), np.zeros((0,), dtype=np.float32)
    if sigma <= 0:
        raise ValueError('sigma must be positive, got %r' % sigma)
    x1, y1, x2, y2 = (dets[:, k] for k in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = dets[:, 4].argsort()[::-1]
    scores = dets[order, 4]
    max_dets = order.size if max_dets is None or max_dets < 0 else int(max_dets)
    keep, kept_scores = [], []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        keep.append(i)
        kept_scores.append(scores[0])
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[rest] - inter)
        scores = scores[1:] * np.exp(-ovr ** 2 / sigma)
        tmp = scores.argsort()[::-1]
        order, scores = rest[tmp], scores[tmp]
    return np.asarray(keep, dtype=np.int64), np.asarray(kept_scores, dtype=np.float32)


def soft_nms_wrapper(thresh=0.3, method='linear', sigma=0.5, score_thresh=0.001):
    """``f(dets) -> keep`` using soft-NMS.

    The returned function also writes the decayed scores back: call
    ``f.rescore(dets)`` to get ``(keep, new_scores)`` instead.
    """
    thresh = _check_thresh(thresh)
    if method not in SOFT_NMS_METHODS:
        raise ValueError("method must be one of %s, got %r" % (sorted(SOFT_NMS_METHODS), method))

    def rescore(dets):
        return soft_nms(dets, thresh, method, sigma, score_thresh)

    def _nms(dets):
        return rescore(dets)[0]
    _nms.rescore = rescore
    return _nms


def gpu_nms_wrapper(thresh, device_id):
    """``f(dets) -> keep`` using the CUDA NMS of ``dcn.nms.gpu_nms`` on GPU ``device_id``.

    Raises ImportError with instructions when the CUDA module was not built.
    """
    thresh = _check_thresh(thresh)
    try:
        from .gpu_nms import gpu_nms
    except ImportError as exc:
        raise ImportError('gpu_nms_wrapper(device_id=%r): the CUDA NMS is unavailable (%s); '
                          'use cpu_nms_wrapper(thresh) instead' % (device_id, exc)) from exc

    def _nms(dets):
        dets = _check_dets(dets)
        if dets.shape[0] == 0:
            return []
        return list(gpu_nms(np.ascontiguousarray(dets[:, :5], dtype=np.float32), thresh, device_id))
    return _nms
