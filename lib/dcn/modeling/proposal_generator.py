"""Proposal generators: region proposals from backbone features.

``build(features, output_spec, im_info, cfg, is_train, inputs, **options)`` returns a dict
with ``rois`` and, in training, the losses named in the task's name table
(``rpn_cls_prob``, ``rpn_bbox_loss``); ``anchor_levels(output_spec, cfg)`` lists the
(score layer, stride) pairs whose map sizes the loader needs for the anchor targets.
"""
from dcn.symbols import heads

from .registry import PROPOSAL_GENERATORS

__all__ = ['RPN']


def _level_stride(output_spec, feature, cfg):
    stride = output_spec[feature].stride
    if cfg.network.RPN_FEAT_STRIDE != stride:
        raise ValueError('config key network.RPN_FEAT_STRIDE is %r but the RPN runs on the '
                         'feature %s of stride %r: set the key to %r'
                         % (cfg.network.RPN_FEAT_STRIDE, feature, stride, stride))
    return stride


@PROPOSAL_GENERATORS.register('rpn')
class RPN(object):
    """Single-level RPN (``rpn_conv_3x3`` -> ``rpn_cls_score`` / ``rpn_bbox_pred``) and the
    proposal layer (``rois``)."""

    score_layer = 'rpn_cls_score'

    def __init__(self, in_feature='res4', num_hidden=512):
        self.in_feature = in_feature
        self.num_hidden = num_hidden

    def anchor_levels(self, output_spec, cfg):
        return [(self.score_layer, _level_stride(output_spec, self.in_feature, cfg))]

    def _head(self, features, output_spec, cfg):
        _level_stride(output_spec, self.in_feature, cfg)
        num_anchors = int(cfg.network.NUM_ANCHORS)
        cls_score, bbox_pred = heads.rpn_head(features[self.in_feature], num_anchors,
                                              self.num_hidden)
        return num_anchors, cls_score, bbox_pred

    def __call__(self, features, output_spec, im_info, cfg, is_train, inputs=None):
        from dcn.layers import rpn_proposal
        num_anchors, cls_score, bbox_pred = self._head(features, output_spec, cfg)
        if is_train:
            prob, bbox_loss, act = heads.rpn_train_outputs(
                cfg, cls_score, bbox_pred, inputs['label'], inputs['bbox_target'],
                inputs['bbox_weight'], num_anchors)
            rois = rpn_proposal(act, bbox_pred, im_info, cfg, True, name='rois')
            return {'rois': rois, 'rpn_cls_prob': prob, 'rpn_bbox_loss': bbox_loss}
        prob = heads.rpn_test_prob(cls_score, num_anchors)
        return {'rois': rpn_proposal(prob, bbox_pred, im_info, cfg, False, name='rois')}

    def losses(self, features, output_spec, cfg, inputs):
        """The RPN alone in training: ``rpn_cls_prob`` and ``rpn_bbox_loss`` (no proposal
        layer), for RPN-only training."""
        num_anchors, cls_score, bbox_pred = self._head(features, output_spec, cfg)
        prob, bbox_loss, _ = heads.rpn_train_outputs(
            cfg, cls_score, bbox_pred, inputs['label'], inputs['bbox_target'],
            inputs['bbox_weight'], num_anchors)
        return {'rpn_cls_prob': prob, 'rpn_bbox_loss': bbox_loss}

    def proposals_with_scores(self, features, output_spec, im_info, cfg):
        """Test proposals and their scores (``rois``, ``rois_score``) with the TEST.RPN_*
        settings, as the original's RPN-only test symbol."""
        from dcn.layers import rpn_proposal
        num_anchors, cls_score, bbox_pred = self._head(features, output_spec, cfg)
        prob = heads.rpn_test_prob(cls_score, num_anchors)
        group = rpn_proposal(prob, bbox_pred, im_info, cfg, False, name='rois',
                             output_score=True)
        return {'rois': group[0], 'rois_score': group[1]}
