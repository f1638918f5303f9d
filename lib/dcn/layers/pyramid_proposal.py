"""CustomOp ``pyramid_proposal``: the RPN outputs of every pyramid level -> proposals, as
the original's ``fpn/operator_py/pyramid_proposal.py``.

Inputs: ``rpn_cls_prob_stride<s>`` (N, 2A, H_s, W_s) for each ``feat_stride`` s, then
``rpn_bbox_pred_stride<s>`` (N, 4A, H_s, W_s) for each s, then ``im_info`` (N, 3); the
i-th map belongs to the i-th stride (the original reads fixed positions and is only right
for its configured order 4, 8, 16, 32, 64, where both agree).
Outputs: ``output`` (N * post_nms_top_n, 5) (batch index, x1, y1, x2, y2) and, with
``output_score``, ``score`` (N * post_nms_top_n, 1).

Per image: every level is decoded as by the single-map ``proposal`` op (anchors of base
size = the level's stride, maps cropped to ``int(im_info / stride)``, clipping, the
``rpn_min_size * scale`` filter; ``level_proposals``).  The levels are concatenated in
stride order with no per-level top-N; then one global sort (numpy's default ``argsort`` of
the float32 scores, reversed, as the original), the first ``rpn_pre_nms_top_n``, NMS at
``threshold`` and the first ``rpn_post_nms_top_n`` (``select_proposals``).  A shorter list
is completed with kept proposals drawn at random (numpy's global generator), as the
original (``random_pad='False'``: repeated cyclically instead).
"""
import mxnet as mx
import numpy as np

from dcn.layers._common import check_error, nms_function, parse_bool, parse_floats
from dcn.layers.proposal import (BatchProposalOp, BatchProposalProp, batch_proposals,
                                 check_im_info, level_proposals, select_proposals)

__all__ = ['pyramid_proposal_numpy', 'PyramidProposalOperator', 'PyramidProposalProp']


def pyramid_proposal_numpy(cls_probs, bbox_preds, im_info, feat_strides=(4, 8, 16, 32, 64),
                           scales=(8,), ratios=(0.5, 1, 2), pre_nms_top_n=12000,
                           post_nms_top_n=2000, nms_thresh=0.7, min_size=0, nms=None,
                           random_pad=True):
    """Batched pyramid proposals: ``cls_probs`` / ``bbox_preds`` are lists (one array per
    stride) of (N, 2A, H, W) / (N, 4A, H, W).  Returns rois (N * post, 5) and scores
    (N * post, 1), float32."""
    if len(cls_probs) != len(feat_strides) or len(bbox_preds) != len(feat_strides):
        raise ValueError('pyramid_proposal: %d strides but %d score maps and %d delta maps'
                         % (len(feat_strides), len(cls_probs), len(bbox_preds)))
    if nms is None:
        nms = nms_function(nms_thresh)

    def image(b):
        boxes, scores = [], []
        for prob, deltas, stride in zip(cls_probs, bbox_preds, feat_strides):
            p, s = level_proposals(prob[b], deltas[b], im_info[b], stride, scales, ratios,
                                   min_size)
            boxes.append(p)
            scores.append(s.astype(np.float32, copy=False))
        return select_proposals(np.vstack(boxes), np.concatenate(scores), im_info[b],
                                pre_nms_top_n, post_nms_top_n, nms, random_pad)

    return batch_proposals(image(b) for b in range(cls_probs[0].shape[0]))


class PyramidProposalOperator(BatchProposalOp):
    def __init__(self, feat_strides, scales, ratios, output_score, pre_nms_top_n,
                 post_nms_top_n, threshold, min_size, random_pad):
        super(PyramidProposalOperator, self).__init__(scales, ratios, output_score,
                                                      pre_nms_top_n, post_nms_top_n, threshold,
                                                      min_size, random_pad)
        self._strides = feat_strides

    def _proposals(self, inputs):
        n = len(self._strides)
        probs, deltas, im_info = inputs[:n], inputs[n:2 * n], inputs[2 * n]
        check_im_info('pyramid_proposal', im_info, probs[0].shape[0])
        return pyramid_proposal_numpy(probs, deltas, im_info, self._strides, self._scales,
                                      self._ratios, self._pre, self._post, None, self._min_size,
                                      self._nms, self._random_pad)


@mx.operator.register('pyramid_proposal')
class PyramidProposalProp(BatchProposalProp):
    def __init__(self, feat_stride='(4, 8, 16, 32, 64)', scales='(8)', ratios='(0.5, 1, 2)',
                 output_score='False', rpn_pre_nms_top_n='12000', rpn_post_nms_top_n='2000',
                 threshold='0.7', rpn_min_size='0', random_pad='True'):
        super(PyramidProposalProp, self).__init__(need_top_grad=False)
        # argument errors are kept and raised from infer_shape (see ProposalProp)
        self._error = None
        self._strides = (4, 8, 16, 32, 64)
        self._output_score = parse_bool(output_score)
        try:
            self._strides = tuple(int(s) for s in parse_floats(feat_stride,
                                                               'pyramid_proposal feat_stride'))
            self._scales = parse_floats(scales, 'pyramid_proposal scales')
            self._ratios = parse_floats(ratios, 'pyramid_proposal ratios')
            self._pre = int(rpn_pre_nms_top_n)
            self._post = int(rpn_post_nms_top_n)
            self._threshold = float(threshold)
            self._min_size = float(rpn_min_size)
            self._random_pad = parse_bool(random_pad)
            if not self._strides or min(self._strides) <= 0:
                raise ValueError('pyramid_proposal: feat_stride must hold positive strides, '
                                 'got %r' % (feat_stride,))
            if self._post <= 0:
                raise ValueError('pyramid_proposal: rpn_post_nms_top_n must be positive, got %d'
                                 % self._post)
        except (ValueError, TypeError) as exc:
            self._error = str(exc)

    def list_arguments(self):
        return (['rpn_cls_prob_stride%d' % s for s in self._strides] +
                ['rpn_bbox_pred_stride%d' % s for s in self._strides] + ['im_info'])

    def infer_shape(self, in_shape):
        check_error(self)
        batch = in_shape[0][0]
        return list(in_shape[:-1]) + [(batch, 3)], self.output_shapes(batch), []

    def create_operator(self, ctx, shapes, dtypes):
        check_error(self)
        return PyramidProposalOperator(self._strides, self._scales, self._ratios,
                                       self._output_score, self._pre, self._post,
                                       self._threshold, self._min_size, self._random_pad)
