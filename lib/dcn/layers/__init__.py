"""Training-graph operators (MXNet CustomOps) and their symbol builders.

Importing this package registers the CustomOps ``proposal``, ``pyramid_proposal``,
``proposal_target`` and ``BoxAnnotatorOHEM``.  Configuration reaches the operators as plain numbers
and strings only, so symbols stay serialisable to JSON.  None of them
propagates gradients (their input gradients are zero).
"""
import mxnet as mx

from dcn.layers import proposal as _proposal  # noqa: F401  (registers 'proposal')
from dcn.layers import pyramid_proposal as _pyramid_proposal  # noqa: F401
from dcn.layers import proposal_target as _proposal_target  # noqa: F401
from dcn.layers import box_annotator_ohem as _box_annotator_ohem  # noqa: F401
from dcn.config import original_quirks
from dcn.layers._common import tuple_str

__all__ = ['rpn_proposal', 'proposal_target', 'box_annotator_ohem', 'num_reg_classes']


def num_reg_classes(cfg, num_classes):
    """2 for class-agnostic box regression (background + object), else num_classes."""
    return 2 if cfg.CLASS_AGNOSTIC else num_classes


def rpn_proposal(rpn_cls_prob, rpn_bbox_pred, im_info, cfg, is_train, name='rois',
                 output_score=False):
    """Proposal symbol: ``rpn_cls_prob`` (N, 2A, H, W), ``rpn_bbox_pred`` (N, 4A, H, W).

    Uses ``cfg.TRAIN`` or ``cfg.TEST`` (``RPN_PRE_NMS_TOP_N``, ``RPN_POST_NMS_TOP_N``,
    ``RPN_NMS_THRESH``, ``RPN_MIN_SIZE``, ``BATCH_IMAGES``, ``CXX_PROPOSAL``).  With
    ``CXX_PROPOSAL`` MXNet's ``contrib.Proposal`` (or ``MultiProposal`` for batches of
    several images) is used, otherwise the ``proposal`` CustomOp (in training with
    ``TRAIN.ORIGINAL_QUIRKS``, short lists padded with random kept proposals).  Output
    (N * post_nms_top_n, 5): batch index, x1, y1, x2, y2; with ``output_score`` a group of
    that and the scores (N * post_nms_top_n, 1).
    """
    section = cfg.TRAIN if is_train else cfg.TEST
    where = 'TRAIN' if is_train else 'TEST'
    if int(section.RPN_POST_NMS_TOP_N) <= 0:
        raise ValueError('%s.RPN_POST_NMS_TOP_N must be positive, got %r'
                         % (where, section.RPN_POST_NMS_TOP_N))
    if not 0 < float(section.RPN_NMS_THRESH) <= 1:
        raise ValueError('%s.RPN_NMS_THRESH must be in (0, 1], got %r'
                         % (where, section.RPN_NMS_THRESH))
    stride = int(cfg.network.RPN_FEAT_STRIDE)
    scales = tuple(float(s) for s in cfg.network.ANCHOR_SCALES)
    ratios = tuple(float(r) for r in cfg.network.ANCHOR_RATIOS)
    if section.CXX_PROPOSAL:
        op = mx.sym.contrib.MultiProposal if int(section.BATCH_IMAGES) > 1 else \
            mx.sym.contrib.Proposal
        return op(cls_prob=rpn_cls_prob, bbox_pred=rpn_bbox_pred, im_info=im_info, name=name,
                  feature_stride=stride, scales=scales, ratios=ratios,
                  rpn_pre_nms_top_n=int(section.RPN_PRE_NMS_TOP_N),
                  rpn_post_nms_top_n=int(section.RPN_POST_NMS_TOP_N),
                  threshold=float(section.RPN_NMS_THRESH),
                  rpn_min_size=int(section.RPN_MIN_SIZE), output_score=bool(output_score))
    return mx.sym.Custom(cls_prob=rpn_cls_prob, bbox_pred=rpn_bbox_pred, im_info=im_info,
                         op_type='proposal', name=name, feat_stride=str(stride),
                         scales=tuple_str(scales), ratios=tuple_str(ratios),
                         rpn_pre_nms_top_n=str(int(section.RPN_PRE_NMS_TOP_N)),
                         rpn_post_nms_top_n=str(int(section.RPN_POST_NMS_TOP_N)),
                         threshold=str(float(section.RPN_NMS_THRESH)),
                         rpn_min_size=str(float(section.RPN_MIN_SIZE)),
                         random_pad=str(bool(is_train and original_quirks(cfg))),
                         output_score=str(bool(output_score)))


def proposal_target(rois, gt_boxes, cfg, num_classes, name='proposal_target'):
    """Sample RoIs and targets; returns (rois, label, bbox_target, bbox_weight) symbols.

    ``gt_boxes`` is the (N, G, 5) data input.  Reads ``cfg.TRAIN.BATCH_IMAGES``,
    ``BATCH_ROIS`` (-1: all proposals plus gt), ``FG_FRACTION``, ``FG_THRESH``,
    ``BG_THRESH_HI/LO``, ``BBOX_NORMALIZATION_PRECOMPUTED``, ``BBOX_MEANS/STDS``,
    ``BBOX_WEIGHTS``, ``ORIGINAL_QUIRKS`` (the original's gap filling) and
    ``cfg.CLASS_AGNOSTIC``.
    """
    train = cfg.TRAIN
    if int(train.BATCH_ROIS) == 0 or int(train.BATCH_ROIS) < -1:
        raise ValueError('TRAIN.BATCH_ROIS must be positive or -1, got %r' % (train.BATCH_ROIS,))
    if int(train.BATCH_ROIS) > 0 and int(train.BATCH_ROIS) % int(train.BATCH_IMAGES) != 0:
        raise ValueError('TRAIN.BATCH_ROIS (%d) must be a multiple of TRAIN.BATCH_IMAGES (%d)'
                         % (train.BATCH_ROIS, train.BATCH_IMAGES))
    if not 0 <= float(train.FG_FRACTION) <= 1:
        raise ValueError('TRAIN.FG_FRACTION must be in [0, 1], got %r' % (train.FG_FRACTION,))
    group = mx.sym.Custom(rois=rois, gt_boxes=gt_boxes, op_type='proposal_target', name=name,
                          num_classes=str(int(num_classes)),
                          num_reg_classes=str(num_reg_classes(cfg, num_classes)),
                          batch_images=str(int(train.BATCH_IMAGES)),
                          batch_rois=str(int(train.BATCH_ROIS)),
                          fg_fraction=str(float(train.FG_FRACTION)),
                          fg_thresh=str(float(train.FG_THRESH)),
                          bg_thresh_hi=str(float(train.BG_THRESH_HI)),
                          bg_thresh_lo=str(float(train.BG_THRESH_LO)),
                          normalize=str(bool(train.BBOX_NORMALIZATION_PRECOMPUTED)),
                          bbox_means=tuple_str(train.BBOX_MEANS),
                          bbox_stds=tuple_str(train.BBOX_STDS),
                          bbox_weights=tuple_str(train.BBOX_WEIGHTS),
                          original_gaps=str(original_quirks(cfg)))
    return group[0], group[1], group[2], group[3]


def box_annotator_ohem(cls_score, bbox_pred, label, bbox_target, bbox_weight, cfg, num_classes,
                       num_reg_classes, name='ohem'):
    """OHEM over sampled RoIs; returns (labels_ohem, bbox_weights_ohem) symbols.

    ``cls_score`` are the raw (R, C) class scores (softmax applied inside),
    ``bbox_pred`` (R, 4 * num_reg_classes).  Keeps ``cfg.TRAIN.BATCH_ROIS_OHEM``
    RoIs per device batch (divided evenly among ``BATCH_IMAGES`` images).
    """
    batch_images = int(cfg.TRAIN.BATCH_IMAGES)
    roi_per_img = int(cfg.TRAIN.BATCH_ROIS_OHEM) // batch_images
    if roi_per_img <= 0:
        raise ValueError('TRAIN.BATCH_ROIS_OHEM (%r) must be at least TRAIN.BATCH_IMAGES (%d)'
                         % (cfg.TRAIN.BATCH_ROIS_OHEM, batch_images))
    group = mx.sym.Custom(cls_score=cls_score, bbox_pred=bbox_pred, labels=label,
                          bbox_targets=bbox_target, bbox_weights=bbox_weight,
                          op_type='BoxAnnotatorOHEM', name=name,
                          num_classes=str(int(num_classes)),
                          num_reg_classes=str(int(num_reg_classes)),
                          roi_per_img=str(roi_per_img), batch_images=str(batch_images))
    return group[0], group[1]
