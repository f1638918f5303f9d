# cython: boundscheck=False, wraparound=False, cdivision=True
"""Pairwise box overlaps (intersection over union), legacy pixel convention."""
import numpy as np
cimport numpy as cnp

cnp.import_array()

ctypedef cnp.float64_t DTYPE_t


def bbox_overlaps_cython(cnp.ndarray[DTYPE_t, ndim=2] boxes,
                         cnp.ndarray[DTYPE_t, ndim=2] query_boxes):
    """IoU of every box in ``boxes`` (N, 4) with every box in ``query_boxes`` (K, 4).

    Boxes are x1, y1, x2, y2 with inclusive pixel corners (width = x2 - x1 + 1).
    Returns a float64 array of shape (N, K).
    """
    cdef Py_ssize_t N = boxes.shape[0]
    cdef Py_ssize_t K = query_boxes.shape[0]
    cdef cnp.ndarray[DTYPE_t, ndim=2] overlaps = np.zeros((N, K), dtype=np.float64)
    cdef DTYPE_t iw, ih, box_area, ua
    cdef Py_ssize_t k, n
    with nogil:
        for k in range(K):
            box_area = ((query_boxes[k, 2] - query_boxes[k, 0] + 1) *
                        (query_boxes[k, 3] - query_boxes[k, 1] + 1))
            for n in range(N):
                iw = (min(boxes[n, 2], query_boxes[k, 2]) -
                      max(boxes[n, 0], query_boxes[k, 0]) + 1)
                if iw > 0:
                    ih = (min(boxes[n, 3], query_boxes[k, 3]) -
                          max(boxes[n, 1], query_boxes[k, 1]) + 1)
                    if ih > 0:
                        ua = ((boxes[n, 2] - boxes[n, 0] + 1) *
                              (boxes[n, 3] - boxes[n, 1] + 1) + box_area - iw * ih)
                        if ua > 0:
                            overlaps[n, k] = iw * ih / ua
    return overlaps
