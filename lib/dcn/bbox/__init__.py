"""Box utilities: overlaps (Cython), regression targets, decoding and clipping."""
from .bbox_transform import (bbox_overlaps, bbox_overlaps_py, bbox_pred, bbox_transform,
                             clip_boxes, filter_boxes, nonlinear_pred, nonlinear_transform)

__all__ = ['bbox_overlaps', 'bbox_overlaps_py', 'bbox_transform', 'bbox_pred', 'clip_boxes',
           'filter_boxes', 'nonlinear_transform', 'nonlinear_pred']
