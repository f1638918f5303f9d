"""Feature-pyramid parts (the original's ``fpn/``: FPN and Deformable FPN).

- backbone ``resnet_v1_fpn``: ResNet-v1 without dilation (optionally with the five
  deformable 3x3 layers of Deformable FPN) and the pyramid neck; features ``p2`` .. ``p6``
  at strides 4 .. 64, ``feature_dim`` channels each;
- proposal generator ``pyramid_rpn``: one RPN whose weights (``rpn_conv_weight``, ...) are
  shared by every level, the per-level losses concatenated, proposals from the
  ``pyramid_proposal`` CustomOp (one global top-N over all levels);
- RoI head ``fpn_2fc``: ``FPNROIPooling`` (each RoI pooled from one level; deformable with
  the per-level offset FCs ``offset_p2`` .. ``offset_p5``, lr_mult 0.01) then ``fc_new_1``,
  ``fc_new_2``, ``cls_score``, ``bbox_pred``;
- meta-architecture :class:`FPNRCNN` assembling them, with a loader that labels the anchors
  of all levels jointly (:class:`dcn.loader.PyramidAnchorLoader`).
"""
import mxnet as mx

from dcn.symbols import heads
from dcn.symbols.resnet import RESNET_V1_101, resnet_pyramid

from .meta_arch import TwoStageDetector
from .names import output_name
from .registry import BACKBONES, PROPOSAL_GENERATORS, ROI_HEADS, ShapeSpec

__all__ = ['build_resnet_v1_fpn', 'PyramidRPN', 'FPNTwoFCHead', 'FPNRCNN', 'PYRAMID_LEVELS',
           'fpn_level']

#: pyramid levels and their strides (P6 only feeds the RPN)
PYRAMID_LEVELS = (('p2', 4), ('p3', 8), ('p4', 16), ('p5', 32), ('p6', 64))


def _conv(data, name, num_filter, kernel, stride=1, pad=0):
    return mx.sym.Convolution(data=data, name=name, num_filter=num_filter,
                              kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad))


@BACKBONES.register('resnet_v1_fpn')
def build_resnet_v1_fpn(data, cfg, is_train, sym_ops, spec=None, deformable=False,
                        feature_dim=256, norm=False):
    """ResNet-v1 (``spec``) + feature pyramid, as the original's ``get_fpn_feature``:
    1x1 laterals ``fpn_p{2..5}_1x1``, nearest x2 upsampling and sums top-down, 3x3 outputs
    ``fpn_p{2..5}`` (``fpn_p5`` on the lateral itself) and ``fpn_p6``, a stride-2 3x3
    convolution on res5 (not a subsampled P5); all with bias, no ReLU.

    ``norm`` (not in the original, whose pyramid has none): a BatchNorm ``<conv>_bn`` after
    each of these convolutions (statistics of the batch in training, moving ones in
    testing, as the backbone's ``spec``), for networks trained from scratch."""
    spec = spec or RESNET_V1_101

    def conv(x, name, kernel, stride=1, pad=0):
        y = _conv(x, name, feature_dim, kernel, stride=stride, pad=pad)
        if not norm:
            return y
        return mx.sym.BatchNorm(data=y, name=name + '_bn', fix_gamma=False, eps=spec.eps,
                                use_global_stats=spec.frozen_bn or not is_train)

    c2, c3, c4, c5 = resnet_pyramid(data, spec, is_train, deformable=deformable,
                                    sym_ops=sym_ops)
    lat5 = conv(c5, 'fpn_p5_1x1', 1)
    lat4 = conv(c4, 'fpn_p4_1x1', 1)
    lat3 = conv(c3, 'fpn_p3_1x1', 1)
    lat2 = conv(c2, 'fpn_p2_1x1', 1)
    up5 = mx.sym.UpSampling(lat5, scale=2, sample_type='nearest', name='fpn_p5_upsample')
    sum4 = mx.sym.ElementWiseSum(up5, lat4, name='fpn_p4_sum')
    up4 = mx.sym.UpSampling(sum4, scale=2, sample_type='nearest', name='fpn_p4_upsample')
    sum3 = mx.sym.ElementWiseSum(up4, lat3, name='fpn_p3_sum')
    up3 = mx.sym.UpSampling(sum3, scale=2, sample_type='nearest', name='fpn_p3_upsample')
    sum2 = mx.sym.ElementWiseSum(up3, lat2, name='fpn_p2_sum')
    feats = {
        'p6': conv(c5, 'fpn_p6', 3, stride=2, pad=1),
        'p5': conv(lat5, 'fpn_p5', 3, pad=1),
        'p4': conv(sum4, 'fpn_p4', 3, pad=1),
        'p3': conv(sum3, 'fpn_p3', 3, pad=1),
        'p2': conv(sum2, 'fpn_p2', 3, pad=1),
    }
    return feats, {name: ShapeSpec(stride, feature_dim) for name, stride in PYRAMID_LEVELS}


def _strides(output_spec, features, key, cfg):
    """The strides of ``features`` in the spec; config ``key`` (a list) must agree."""
    strides = [output_spec[f].stride for f in features]
    given = cfg.network.RPN_FEAT_STRIDE if key == 'network.RPN_FEAT_STRIDE' else None
    if given is not None:
        given_list = [int(s) for s in (given if isinstance(given, (list, tuple)) else [given])]
        if given_list != strides:
            raise ValueError('config key %s is %r but the pyramid RPN runs on %s of strides '
                             '%r: set the key to %r' % (key, given, ', '.join(features),
                                                        strides, strides))
    return strides


@PROPOSAL_GENERATORS.register('pyramid_rpn')
class PyramidRPN(object):
    """RPN shared across pyramid levels (``get_rpn_subnet`` of the original): per level
    ``rpn_conv_<lvl>`` (3x3 + ReLU ``rpn_relu_<lvl>``), ``rpn_cls_score_<lvl>`` (2A) and
    ``rpn_bbox_pred_<lvl>`` (4A), all levels using the variables ``rpn_conv_weight`` /
    ``_bias``, ``rpn_cls_score_weight`` / ``_bias``, ``rpn_bbox_pred_weight`` / ``_bias``.

    Training: the (N, 2, A*H*W) scores and (N, 4A, H*W) deltas of the levels are
    concatenated in level order (the loader lays the labels out the same way) into one
    softmax ``rpn_cls_prob`` and one smooth-L1 loss ``rpn_bbox_loss``.
    """

    def __init__(self, in_feature=('p2', 'p3', 'p4', 'p5', 'p6'), num_hidden=512):
        self.in_features = tuple(in_feature)
        self.num_hidden = num_hidden

    def anchor_levels(self, output_spec, cfg):
        strides = _strides(output_spec, self.in_features, 'network.RPN_FEAT_STRIDE', cfg)
        return [('rpn_cls_score_' + f, s) for f, s in zip(self.in_features, strides)]

    def _level(self, data, lvl, num_anchors, shared):
        conv = mx.sym.Convolution(data=data, kernel=(3, 3), pad=(1, 1),
                                  num_filter=self.num_hidden, name='rpn_conv_' + lvl,
                                  weight=shared['rpn_conv_weight'],
                                  bias=shared['rpn_conv_bias'])
        relu = mx.sym.Activation(data=conv, act_type='relu', name='rpn_relu_' + lvl)
        score = mx.sym.Convolution(data=relu, kernel=(1, 1), num_filter=2 * num_anchors,
                                   name='rpn_cls_score_' + lvl,
                                   weight=shared['rpn_cls_score_weight'],
                                   bias=shared['rpn_cls_score_bias'])
        delta = mx.sym.Convolution(data=relu, kernel=(1, 1), num_filter=4 * num_anchors,
                                   name='rpn_bbox_pred_' + lvl,
                                   weight=shared['rpn_bbox_pred_weight'],
                                   bias=shared['rpn_bbox_pred_bias'])
        t1 = mx.sym.Reshape(data=score, shape=(0, 2, -1, 0), name='rpn_cls_score_t1_' + lvl)
        t2 = mx.sym.Reshape(data=t1, shape=(0, 2, -1), name='rpn_cls_score_t2_' + lvl)
        prob = mx.sym.SoftmaxActivation(data=t1, mode='channel', name='rpn_cls_prob_' + lvl)
        prob = mx.sym.Reshape(data=prob, shape=(0, 2 * num_anchors, -1, 0),
                              name='rpn_cls_prob_t_' + lvl)
        delta_t = mx.sym.Reshape(data=delta, shape=(0, 0, -1), name='rpn_bbox_pred_t_' + lvl)
        return t2, prob, delta_t, delta

    def __call__(self, features, output_spec, im_info, cfg, is_train, inputs=None):
        from dcn.config import original_quirks
        from dcn.layers._common import tuple_str
        strides = _strides(output_spec, self.in_features, 'network.RPN_FEAT_STRIDE', cfg)
        num_anchors = int(cfg.network.NUM_ANCHORS)
        shared = {n: mx.sym.Variable(n) for n in (
            'rpn_conv_weight', 'rpn_conv_bias', 'rpn_cls_score_weight', 'rpn_cls_score_bias',
            'rpn_bbox_pred_weight', 'rpn_bbox_pred_bias')}
        levels = [self._level(features[f], f, num_anchors, shared) for f in self.in_features]
        out = {}
        if is_train:
            score = mx.sym.Concat(*[lv[0] for lv in levels], dim=2, name='rpn_cls_score_concat')
            delta = mx.sym.Concat(*[lv[2] for lv in levels], dim=2, name='rpn_bbox_pred_concat')
            out['rpn_cls_prob'] = mx.sym.SoftmaxOutput(
                data=score, label=inputs['label'], multi_output=True, normalization='valid',
                use_ignore=True, ignore_label=-1, name='rpn_cls_prob')
            loss = inputs['bbox_weight'] * mx.sym.smooth_l1(
                name='rpn_bbox_loss_l1', scalar=3.0, data=(delta - inputs['bbox_target']))
            out['rpn_bbox_loss'] = mx.sym.MakeLoss(
                name='rpn_bbox_loss', data=loss, grad_scale=1.0 / cfg.TRAIN.RPN_BATCH_SIZE)
        section = cfg.TRAIN if is_train else cfg.TEST
        where = 'TRAIN' if is_train else 'TEST'
        if int(section.RPN_POST_NMS_TOP_N) <= 0:
            raise ValueError('%s.RPN_POST_NMS_TOP_N must be positive, got %r'
                             % (where, section.RPN_POST_NMS_TOP_N))
        maps = {}
        for (_, prob, _, delta), s in zip(levels, strides):
            maps['rpn_cls_prob_stride%d' % s] = prob
            maps['rpn_bbox_pred_stride%d' % s] = delta
        out['rois'] = mx.sym.Custom(
            op_type='pyramid_proposal', name='rois', im_info=im_info,
            feat_stride=tuple_str(strides),
            scales=tuple_str(float(x) for x in cfg.network.ANCHOR_SCALES),
            ratios=tuple_str(float(x) for x in cfg.network.ANCHOR_RATIOS),
            rpn_pre_nms_top_n=str(int(section.RPN_PRE_NMS_TOP_N)),
            rpn_post_nms_top_n=str(int(section.RPN_POST_NMS_TOP_N)),
            threshold=str(float(section.RPN_NMS_THRESH)),
            rpn_min_size=str(float(section.RPN_MIN_SIZE)),
            random_pad=str(bool(is_train and original_quirks(cfg))), **maps)
        return out


def fpn_level(rois, num_levels=4):
    """Level index (0 = P2) of (R, 4+) RoIs x1, y1, x2, y2 (or (R, 5) with the batch index
    first), as the original: clip(floor(2 + log2(sqrt(w * h) / 224)), 0, levels - 1),
    w = x2 - x1 + 1, h = y2 - y1 + 1."""
    import numpy as np
    rois = np.asarray(rois)
    boxes = rois[:, 1:5] if rois.shape[1] == 5 else rois[:, 0:4]
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    k = np.floor(2 + np.log2(np.sqrt(w * h) / 224))
    return np.clip(k, 0, num_levels - 1).astype(np.int64)


@ROI_HEADS.register('fpn_2fc')
class FPNTwoFCHead(object):
    """FPN RoI pooling (plain: ROIPooling 7x7; deformable: per-level offset FC
    ``offset_p<k>`` with lr_mult 0.01) on P2 .. P5, then the 2fc head (``fc_new_1``,
    ``fc_new_2``, ``cls_score``, ``bbox_pred``)."""

    bbox_layers = (('bbox_pred', 1),)

    def __init__(self, in_feature=('p2', 'p3', 'p4', 'p5'), deformable=False, fc_hidden=1024):
        self.in_features = tuple(in_feature)
        self.deformable = bool(deformable)
        self.fc_hidden = fc_hidden

    def __call__(self, features, output_spec, rois, cfg, sym_ops, is_train):
        p = heads.POOLED_SIZE
        num_classes = cfg.dataset.NUM_CLASSES
        nreg = heads.num_reg_classes(cfg)
        pool = getattr(sym_ops, 'FPNROIPooling', None)
        if pool is None:
            raise ValueError('the FPN RoI head needs the FPNROIPooling operator of the compiled '
                             'library, which MXNet has no built-in counterpart of: set '
                             'network.BUILTIN_OPS to false')
        strides = [output_spec[f].stride for f in self.in_features]
        channels = {output_spec[f].channels for f in self.in_features}
        if len(channels) != 1:
            raise ValueError('FPN RoI head: the pooled levels %s have different channel '
                             'counts %s' % (self.in_features, sorted(channels)))
        inputs = {'data_p%d' % (2 + i): features[f] for i, f in enumerate(self.in_features)}
        if self.deformable:
            for i in range(len(self.in_features)):
                lvl = 'offset_p%d' % (2 + i)
                inputs[lvl + '_weight'] = mx.sym.Variable(lvl + '_weight', lr_mult=0.01)
                inputs[lvl + '_bias'] = mx.sym.Variable(lvl + '_bias', lr_mult=0.01)
        pooled = pool(rois=rois, name='fpn_roi_pooling', feat_strides=tuple(strides),
                      pooled_size=p, with_deformable=self.deformable,
                      output_dim=channels.pop(), sample_per_part=4, trans_std=0.1, **inputs)
        fc1 = mx.sym.FullyConnected(data=pooled, name='fc_new_1', num_hidden=self.fc_hidden)
        fc1 = mx.sym.Activation(data=fc1, act_type='relu', name='fc_new_1_relu')
        fc2 = mx.sym.FullyConnected(data=fc1, name='fc_new_2', num_hidden=self.fc_hidden)
        fc2 = mx.sym.Activation(data=fc2, act_type='relu', name='fc_new_2_relu')
        cls_score = mx.sym.FullyConnected(data=fc2, name='cls_score', num_hidden=num_classes)
        bbox_pred = mx.sym.FullyConnected(data=fc2, name='bbox_pred', num_hidden=4 * nreg)
        return cls_score, bbox_pred


#: layers of the pyramid and the shared RPN, initialised normal(0, 0.01) as the original
_FPN_HEAD_STD = dict(
    [('fpn_p%d' % k, 0.01) for k in range(2, 7)] +
    [('fpn_p%d_1x1' % k, 0.01) for k in range(2, 6)] +
    [('rpn_conv', 0.01), ('rpn_cls_score', 0.01), ('rpn_bbox_pred', 0.01)])


class FPNRCNN(TwoStageDetector):
    """Faster R-CNN with a feature pyramid: ``resnet_v1_fpn`` -> ``pyramid_rpn`` (P2-P6)
    -> ``fpn_2fc`` (P2-P5). Network modules choose ``backbone`` (a ResNetSpec),
    ``deformable`` and the widths (``feature_dim``, ``rpn_hidden``, ``fc_hidden``).

    Initialisation (``init_weight``) as the original: pyramid, RPN and head layers
    normal(0, 0.01) with zero biases, every offset layer (``*_offset``, ``offset_p<k>``)
    zero; from scratch (``network.pretrained`` empty) the hidden ReLU layers of the head
    (``fc_new_1/2``) get He initialisation, as the other from-scratch networks' hidden
    head layers. The pyramid's lateral and output convolutions (``fpn_*``, linear, summed
    top-down) keep the original's normal(0, 0.01) from scratch too (with He initialisation
    there the Shapes network trained from scratch diverged within 20 iterations at lr 0.01;
    with normal(0, 0.01) within about 100: hence ``pyramid_norm`` in the Shapes networks)."""

    backbone_name = 'resnet_v1_fpn'
    proposal_generator = 'pyramid_rpn'
    roi_head = 'fpn_2fc'
    rpn_in_feature = ('p2', 'p3', 'p4', 'p5', 'p6')
    roi_in_feature = ('p2', 'p3', 'p4', 'p5')
    feature_dim = 256
    fc_hidden = 1024
    head_std = dict(TwoStageDetector.head_std, **_FPN_HEAD_STD)
    zero_layers = TwoStageDetector.zero_layers + tuple('offset_p%d' % k for k in range(2, 6))

    #: BatchNorm after the pyramid's convolutions (see build_resnet_v1_fpn); the original
    #: networks have none
    pyramid_norm = False
    head_norm_layers = tuple('%s_bn' % n for n in _FPN_HEAD_STD if n.startswith('fpn_'))

    def backbone_options(self):
        return {'spec': self.backbone, 'deformable': self.deformable,
                'feature_dim': self.feature_dim, 'norm': self.pyramid_norm}

    def head_options(self):
        return {'fc_hidden': self.fc_hidden}

    def build_train_loader(self, sym, roidb, cfg, batch_size, ctx, seed):
        """Anchor targets of all pyramid levels, labelled jointly (every anchor counts:
        the original's FPN loader passes an infinite allowed border)."""
        from dcn.loader import PyramidAnchorLoader
        levels = self.anchor_levels(cfg)
        internals = sym.get_internals()
        outputs = internals.list_outputs()
        feat_syms = []
        for layer, _ in levels:
            if output_name(layer) not in outputs:
                raise ValueError('the training symbol of %s has no %s layer'
                                 % (cfg.symbol, layer))
            feat_syms.append(internals[output_name(layer)])
        return PyramidAnchorLoader(feat_syms, roidb, cfg, batch_size=batch_size,
                                   shuffle=cfg.TRAIN.SHUFFLE, ctx=ctx,
                                   feat_strides=[s for _, s in levels],
                                   anchor_scales=cfg.network.ANCHOR_SCALES,
                                   anchor_ratios=cfg.network.ANCHOR_RATIOS,
                                   allowed_border=float('inf'),
                                   aspect_grouping=cfg.TRAIN.ASPECT_GROUPING, seed=seed)
