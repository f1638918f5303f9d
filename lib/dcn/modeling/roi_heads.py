"""RoI heads: per-RoI class scores and box deltas from one feature map.

``build(features, output_spec, rois, cfg, sym_ops, is_train)`` returns (cls_score (R, C),
bbox_pred (R, 4 * regression classes)). ``bbox_layers`` names the head's box-regression
layers (layer, channels per value): checkpoints store them un-normalised.
"""
from dcn.symbols import heads

from .registry import ROI_HEADS

__all__ = ['RFCNHead', 'TwoFCHead']


class _Head(object):
    bbox_layers = ()

    def __init__(self, in_feature='res5', deformable=False, **widths):
        self.in_feature = in_feature
        self.deformable = bool(deformable)
        self.widths = widths


@ROI_HEADS.register('rfcn')
class RFCNHead(_Head):
    """R-FCN: position-sensitive score maps, (deformable) PS RoI pooling."""

    @property
    def bbox_layers(self):
        p = int(self.widths.get('pooled_size', heads.POOLED_SIZE))
        return (('rfcn_bbox', p * p),)

    def __call__(self, features, output_spec, rois, cfg, sym_ops, is_train):
        return heads.rfcn_head(features[self.in_feature], rois, cfg, sym_ops, self.deformable,
                               feat_stride=output_spec[self.in_feature].stride,
                               **self.widths)


@ROI_HEADS.register('fc2')
class TwoFCHead(_Head):
    """Faster R-CNN 2fc head: (deformable) RoI pooling, two fc layers."""

    bbox_layers = (('bbox_pred', 1),)

    def __call__(self, features, output_spec, rois, cfg, sym_ops, is_train):
        return heads.fc2_head(features[self.in_feature], rois, cfg, sym_ops, self.deformable,
                              feat_stride=output_spec[self.in_feature].stride, **self.widths)
