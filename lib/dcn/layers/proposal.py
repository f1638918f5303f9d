"""CustomOp ``proposal``: RPN outputs -> region proposals.

Inputs: ``cls_prob`` (N, 2A, H, W) (first A channels background, next A
foreground), ``bbox_pred`` (N, 4A, H, W), ``im_info`` (N, 3).
Outputs: ``output`` (N * post_nms_top_n, 5) rows (batch index, x1, y1, x2, y2)
and, with ``output_score``, ``score`` (N * post_nms_top_n, 1).

Per image: the score/delta maps are cropped to the image's own feature extent
(padding of batched images carries no proposals), anchors are decoded with the
deltas, clipped to the image, boxes smaller than ``rpn_min_size * scale`` are
dropped, the ``rpn_pre_nms_top_n`` best scores are kept (<= 0: all), NMS at
``threshold`` is applied and the ``rpn_post_nms_top_n`` best kept, in
descending score order. Equal scores (a confident RPN saturates the float32
softmax at 1.0) are ordered as the original orders them: NumPy's default
``scores.argsort()[::-1]`` on the float32 scores, here and again inside the NMS.
When fewer survive, the kept list is repeated cyclically up to
``rpn_post_nms_top_n`` (deterministic), or, with ``random_pad``, completed with
kept proposals drawn at random (numpy's global generator), as the original.
If no box survives the size filter, the whole image is proposed with score 0.
"""
import mxnet as mx
import numpy as np

from dcn.bbox import bbox_pred, clip_boxes, filter_boxes
from dcn.rpn.assign_anchor import shifted_anchors
from dcn.layers._common import check_error, nms_function, parse_bool, parse_floats, zero_grads

__all__ = ['proposal_numpy', 'level_proposals', 'select_proposals', 'batch_proposals',
           'ProposalOperator', 'ProposalProp']


def level_proposals(cls_prob, bbox_deltas, im_info, feat_stride, scales, ratios, min_size):
    """Decoded proposals of one feature map of one image, before any sorting.

    ``cls_prob`` (2A, H, W), ``bbox_deltas`` (4A, H, W): the maps are cropped to the
    image's own extent ``int(im_info / feat_stride)``, anchors (stride ``feat_stride``)
    decoded with the deltas, clipped to the image and boxes smaller than
    ``min_size * im_info[2]`` dropped.  Returns (n, 4) boxes and (n,) foreground scores in
    anchor order ((h * W + w) * A + a).
    """
    num_anchors = len(scales) * len(ratios)
    if cls_prob.shape[0] != 2 * num_anchors or bbox_deltas.shape[0] != 4 * num_anchors:
        raise ValueError('proposal: cls_prob must have 2A=%d and bbox_pred 4A=%d channels, '
                         'got %d and %d' % (2 * num_anchors, 4 * num_anchors,
                                            cls_prob.shape[0], bbox_deltas.shape[0]))
    height = min(int(im_info[0] / feat_stride), cls_prob.shape[1])
    width = min(int(im_info[1] / feat_stride), cls_prob.shape[2])
    height, width = max(height, 1), max(width, 1)
    scores = cls_prob[num_anchors:, :height, :width]
    deltas = bbox_deltas[:, :height, :width]

    anchors, _ = shifted_anchors(height, width, feat_stride, scales, ratios)
    # (A, H, W) -> (H, W, A): row order (h * W + w) * A + a, as the anchors
    scores = scores.transpose((1, 2, 0)).reshape((-1,))
    deltas = deltas.transpose((1, 2, 0)).reshape((-1, 4))

    proposals = bbox_pred(anchors, deltas)
    proposals = clip_boxes(proposals, (im_info[0], im_info[1]))
    keep = filter_boxes(proposals, min_size * im_info[2])
    return proposals[keep, :], scores[keep]


def select_proposals(proposals, scores, im_info, pre_nms_top_n, post_nms_top_n, nms,
                     random_pad=False):
    """Sort, cut to ``pre_nms_top_n``, NMS, keep ``post_nms_top_n`` (padded when short).

    The order is the original's, ties included: numpy's default ``argsort`` of the float32
    scores, reversed.  With no proposal at all, the whole image is proposed with score 0.
    Returns (post_nms_top_n, 4) boxes and (post_nms_top_n,) scores (float32).
    """
    if proposals.shape[0] == 0:
        proposals = np.array([[0, 0, im_info[1] - 1, im_info[0] - 1]], dtype=np.float32)
        scores = np.zeros((1,), dtype=np.float32)

    # the original's order, ties included (numpy's default sort, reversed)
    order = scores.astype(np.float32, copy=False).argsort()[::-1]
    if pre_nms_top_n > 0:
        order = order[:pre_nms_top_n]
    proposals = proposals[order, :]
    scores = scores[order]

    dets = np.hstack((proposals, scores[:, np.newaxis])).astype(np.float32)
    keep = np.asarray(nms(dets), dtype=np.int64)
    if post_nms_top_n > 0:
        keep = keep[:post_nms_top_n]
        if len(keep) < post_nms_top_n and random_pad:
            pad = np.random.choice(keep, size=post_nms_top_n - len(keep))
            keep = np.hstack((keep, pad))
        elif len(keep) < post_nms_top_n:
            keep = np.resize(keep, post_nms_top_n)
    return proposals[keep, :].astype(np.float32), scores[keep].astype(np.float32)


def proposal_single(cls_prob, bbox_deltas, im_info, feat_stride, scales, ratios,
                    pre_nms_top_n, post_nms_top_n, nms_thresh, min_size, nms=None,
                    random_pad=False):
    """Proposals of one image. ``cls_prob`` (2A, H, W), ``bbox_deltas`` (4A, H, W).

    Returns (post_nms_top_n, 4) boxes and (post_nms_top_n,) scores.
    """
    proposals, scores = level_proposals(cls_prob, bbox_deltas, im_info, feat_stride, scales,
                                        ratios, min_size)
    if nms is None:
        nms = nms_function(nms_thresh)
    return select_proposals(proposals, scores, im_info, pre_nms_top_n, post_nms_top_n, nms,
                            random_pad)


def proposal_numpy(cls_prob, bbox_pred_map, im_info, feat_stride=16, scales=(8, 16, 32),
                   ratios=(0.5, 1, 2), pre_nms_top_n=6000, post_nms_top_n=300,
                   nms_thresh=0.7, min_size=16, nms=None, random_pad=False):
    """Batched proposals: returns rois (N * post, 5) and scores (N * post, 1)."""
    return batch_proposals(
        proposal_single(cls_prob[b], bbox_pred_map[b], im_info[b], feat_stride, scales, ratios,
                        pre_nms_top_n, post_nms_top_n, nms_thresh, min_size, nms, random_pad)
        for b in range(cls_prob.shape[0]))


def batch_proposals(per_image):
    """The (boxes, scores) of each image of a batch, in order, stacked: rois (n, 5) rows
    (batch index, x1, y1, x2, y2) and scores (n, 1), float32."""
    rois, all_scores = [], []
    for b, (boxes, scores) in enumerate(per_image):
        rois.append(np.hstack((np.full((boxes.shape[0], 1), b, dtype=np.float32), boxes)))
        all_scores.append(scores[:, np.newaxis])
    return np.vstack(rois).astype(np.float32), np.vstack(all_scores).astype(np.float32)


def check_im_info(name, im_info, batch):
    """``im_info`` must have one row per image of the batch."""
    if im_info.shape[0] != batch:
        raise ValueError('%s: im_info has %d rows for a batch of %d images'
                         % (name, im_info.shape[0], batch))


class BatchProposalOp(mx.operator.CustomOp):
    """What ``proposal`` and ``pyramid_proposal`` share: ``forward`` writes the rois (and,
    with ``self._output_score``, the scores) that ``self._proposals`` computes from the
    inputs as numpy arrays; no gradient reaches the inputs."""

    def __init__(self, scales, ratios, output_score, pre_nms_top_n, post_nms_top_n, threshold,
                 min_size, random_pad):
        super(BatchProposalOp, self).__init__()
        self._scales = scales
        self._ratios = ratios
        self._output_score = output_score
        self._pre = pre_nms_top_n
        self._post = post_nms_top_n
        self._threshold = threshold
        self._min_size = min_size
        self._random_pad = random_pad
        self._nms = nms_function(threshold)

    def forward(self, is_train, req, in_data, out_data, aux):
        rois, scores = self._proposals([x.asnumpy() for x in in_data])
        self.assign(out_data[0], req[0], rois)
        if self._output_score:
            self.assign(out_data[1], req[1], scores)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        zero_grads(self, req, in_grad)


class BatchProposalProp(mx.operator.CustomOpProp):
    """The outputs of ``proposal`` and ``pyramid_proposal``: ``output`` (N * post, 5) and,
    with ``self._output_score``, ``score`` (N * post, 1); no backward dependency."""

    def list_outputs(self):
        return ['output', 'score'] if self._output_score else ['output']

    def output_shapes(self, batch):
        out = [(batch * self._post, 5)]
        if self._output_score:
            out.append((batch * self._post, 1))
        return out

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return []


class ProposalOperator(BatchProposalOp):
    def __init__(self, feat_stride, scales, ratios, output_score, pre_nms_top_n,
                 post_nms_top_n, threshold, min_size, random_pad=False):
        super(ProposalOperator, self).__init__(scales, ratios, output_score, pre_nms_top_n,
                                               post_nms_top_n, threshold, min_size, random_pad)
        self._feat_stride = feat_stride

    def _proposals(self, inputs):
        cls_prob, deltas, im_info = inputs
        check_im_info('proposal', im_info, cls_prob.shape[0])
        return proposal_numpy(cls_prob, deltas, im_info, self._feat_stride, self._scales,
                              self._ratios, self._pre, self._post, self._threshold,
                              self._min_size, self._nms, self._random_pad)


@mx.operator.register('proposal')
class ProposalProp(BatchProposalProp):
    def __init__(self, feat_stride='16', scales='(8, 16, 32)', ratios='(0.5, 1, 2)',
                 output_score='False', rpn_pre_nms_top_n='6000', rpn_post_nms_top_n='300',
                 threshold='0.3', rpn_min_size='16', random_pad='False'):
        super(ProposalProp, self).__init__(need_top_grad=False)
        self._random_pad = parse_bool(random_pad)
        # MXNet cannot propagate an exception raised while it creates the operator property:
        # argument errors are kept and raised from infer_shape (an MXNetError for the caller)
        self._output_score = str(output_score).strip().lower() in ('true', '1', 'yes')
        self._error = None
        try:
            self._setup(feat_stride, scales, ratios, output_score, rpn_pre_nms_top_n,
                        rpn_post_nms_top_n, threshold, rpn_min_size)
        except (ValueError, TypeError) as exc:
            self._error = str(exc)

    def _setup(self, feat_stride, scales, ratios, output_score, rpn_pre_nms_top_n,
               rpn_post_nms_top_n, threshold, rpn_min_size):
        self._feat_stride = int(feat_stride)
        self._scales = parse_floats(scales, 'proposal scales')
        self._ratios = parse_floats(ratios, 'proposal ratios')
        self._output_score = parse_bool(output_score)
        self._pre = int(rpn_pre_nms_top_n)
        self._post = int(rpn_post_nms_top_n)
        self._threshold = float(threshold)
        self._min_size = float(rpn_min_size)
        if self._post <= 0:
            raise ValueError('proposal: rpn_post_nms_top_n must be positive, got %d' % self._post)
        if self._feat_stride <= 0:
            raise ValueError('proposal: feat_stride must be positive, got %d' % self._feat_stride)

    def list_arguments(self):
        return ['cls_prob', 'bbox_pred', 'im_info']

    def infer_shape(self, in_shape):
        check_error(self)
        cls_shape, bbox_shape, im_info_shape = in_shape
        batch = cls_shape[0]
        return [cls_shape, bbox_shape, (batch, 3)], self.output_shapes(batch), []

    def create_operator(self, ctx, shapes, dtypes):
        check_error(self)
        return ProposalOperator(self._feat_stride, self._scales, self._ratios, self._output_score,
                                self._pre, self._post, self._threshold, self._min_size,
                                self._random_pad)
