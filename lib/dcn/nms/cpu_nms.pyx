# cython: boundscheck=False, wraparound=False, cdivision=True
"""Greedy non-maximum suppression and soft-NMS on the CPU (legacy pixel convention)."""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp

cnp.import_array()


def cpu_nms(cnp.ndarray[cnp.float32_t, ndim=2] dets, double thresh):
    """Greedy NMS. ``dets`` is (N, 5) float32: x1, y1, x2, y2, score.

    Returns the list of kept indices, highest score first; equal scores in the original's
    order (``scores.argsort()[::-1]``, NumPy's default sort reversed).
    """
    cdef Py_ssize_t ndets = dets.shape[0]
    if ndets == 0:
        return []
    cdef cnp.ndarray[cnp.float32_t, ndim=1] x1 = np.ascontiguousarray(dets[:, 0])
    cdef cnp.ndarray[cnp.float32_t, ndim=1] y1 = np.ascontiguousarray(dets[:, 1])
    cdef cnp.ndarray[cnp.float32_t, ndim=1] x2 = np.ascontiguousarray(dets[:, 2])
    cdef cnp.ndarray[cnp.float32_t, ndim=1] y2 = np.ascontiguousarray(dets[:, 3])
    cdef cnp.ndarray[cnp.float32_t, ndim=1] scores = np.ascontiguousarray(dets[:, 4])
    cdef cnp.ndarray[cnp.float32_t, ndim=1] areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    cdef cnp.ndarray[cnp.intp_t, ndim=1] order = scores.argsort()[::-1].astype(np.intp)
    cdef cnp.ndarray[cnp.int32_t, ndim=1] suppressed = np.zeros(ndets, dtype=np.int32)
    cdef cnp.ndarray[cnp.intp_t, ndim=1] keep = np.empty(ndets, dtype=np.intp)
    cdef Py_ssize_t _i, _j, i, j, nkeep = 0
    cdef float ix1, iy1, ix2, iy2, iarea, xx1, yy1, xx2, yy2, w, h, inter, ovr
    with nogil:
        for _i in range(ndets):
            i = order[_i]
            if suppressed[i] == 1:
                continue
            keep[nkeep] = i
            nkeep += 1
            ix1 = x1[i]
            iy1 = y1[i]
            ix2 = x2[i]
            iy2 = y2[i]
            iarea = areas[i]
            for _j in range(_i + 1, ndets):
                j = order[_j]
                if suppressed[j] == 1:
                    continue
                xx1 = max(ix1, x1[j])
                yy1 = max(iy1, y1[j])
                xx2 = min(ix2, x2[j])
                yy2 = min(iy2, y2[j])
                w = max(0.0, xx2 - xx1 + 1)
                h = max(0.0, yy2 - yy1 + 1)
                inter = w * h
                ovr = inter / (iarea + areas[j] - inter)
                if ovr >= thresh:
                    suppressed[j] = 1
    return [int(k) for k in keep[:nkeep]]


def cpu_soft_nms(cnp.ndarray[cnp.float32_t, ndim=2] dets, double sigma=0.5, double thresh=0.3,
                 double score_thresh=0.001, int method=1):
    """Soft-NMS (Bodla et al., 2017).

    ``method`` 0 = hard NMS, 1 = linear decay (score *= 1 - IoU when IoU > ``thresh``),
    2 = gaussian decay (score *= exp(-IoU^2 / sigma)). Boxes whose rescored value falls
    below ``score_thresh`` are dropped.

    Returns (kept indices into ``dets`` in selection order, rescored scores of those boxes).
    """
    cdef Py_ssize_t n = dets.shape[0]
    cdef cnp.ndarray[cnp.float64_t, ndim=2] b = dets[:, :5].astype(np.float64)
    cdef cnp.ndarray[cnp.intp_t, ndim=1] idx = np.arange(n, dtype=np.intp)
    cdef Py_ssize_t i, pos, maxpos, k
    cdef double maxscore, tx1, ty1, tx2, ty2, ts, area, iw, ih, ua, ov, weight, tmp
    cdef Py_ssize_t ti
    i = 0
    while i < n:
        # bring the highest remaining score to position i
        maxpos = i
        maxscore = b[i, 4]
        for pos in range(i + 1, n):
            if b[pos, 4] > maxscore:
                maxscore = b[pos, 4]
                maxpos = pos
        if maxpos != i:
            for k in range(5):
                tmp = b[i, k]
                b[i, k] = b[maxpos, k]
                b[maxpos, k] = tmp
            ti = idx[i]
            idx[i] = idx[maxpos]
            idx[maxpos] = ti
        tx1 = b[i, 0]
        ty1 = b[i, 1]
        tx2 = b[i, 2]
        ty2 = b[i, 3]
        area = (tx2 - tx1 + 1) * (ty2 - ty1 + 1)
        pos = i + 1
        while pos < n:
            iw = min(tx2, b[pos, 2]) - max(tx1, b[pos, 0]) + 1
            if iw > 0:
                ih = min(ty2, b[pos, 3]) - max(ty1, b[pos, 1]) + 1
                if ih > 0:
                    ua = area + (b[pos, 2] - b[pos, 0] + 1) * (b[pos, 3] - b[pos, 1] + 1) - iw * ih
                    ov = iw * ih / ua
                    if method == 1:
                        weight = 1.0 - ov if ov > thresh else 1.0
                    elif method == 2:
                        weight = exp(-(ov * ov) / sigma)
                    else:
                        weight = 0.0 if ov > thresh else 1.0
                    b[pos, 4] = weight * b[pos, 4]
                    if b[pos, 4] < score_thresh:
                        # move the last box into this slot and shrink
                        for k in range(5):
                            b[pos, k] = b[n - 1, k]
                        idx[pos] = idx[n - 1]
                        n -= 1
                        pos -= 1
            pos += 1
        i += 1
    return [int(k) for k in idx[:n]], b[:n, 4].astype(np.float32)
