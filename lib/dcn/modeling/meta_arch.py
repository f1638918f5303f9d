"""Meta-architectures: how a network is assembled from registered parts.

:class:`TwoStageDetector`: backbone (:data:`~dcn.modeling.registry.BACKBONES`) -> proposal
generator (:data:`PROPOSAL_GENERATORS`) -> RoI head (:data:`ROI_HEADS`), with the graph's
names from :data:`~dcn.modeling.names.DETECTION`. :class:`RFCN` and :class:`FasterRCNN`
choose the RoI head; the network modules under ``rfcn/symbols`` and ``faster_rcnn/symbols``
subclass them and choose the backbone spec (``backbone``), whether res5 and the RoI pooling
are deformable (``deformable``) and the head widths.

Symbol class API (see docs/DESIGN.md): ``get_symbol(cfg, is_train)``,
``init_weight(cfg, arg_params, aux_params)``, ``get_fixed_params(cfg)``; and for the
engine: ``names`` (the name table), ``bbox_layers``, ``anchor_levels(cfg)``,
``build_train_loader(...)``.
"""
import copy
import types

import mxnet as mx
import numpy as np

from dcn.symbols import heads

from . import backbone as _backbone  # noqa: F401  (registers the parts)
from . import proposal_generator as _proposal  # noqa: F401
from . import roi_heads as _roi_heads  # noqa: F401
from .base import Model
from .names import DETECTION, RCNN_ONLY, RPN_ONLY, output_name
from .registry import PROPOSAL_GENERATORS, ROI_HEADS

__all__ = ['TwoStageDetector', 'Detector', 'RFCN', 'FasterRCNN', 'sym_ops', 'builtin_sym_ops']

_OP_NAMES = ('DeformableConvolution', 'ModulatedDeformableConvolution',
             'DeformablePSROIPooling', 'PSROIPooling')


def builtin_sym_ops():
    """Namespace with MXNet's built-in ``mx.sym.contrib`` operators."""
    ns = types.SimpleNamespace(builtin=True)
    for n in _OP_NAMES:
        if hasattr(mx.sym.contrib, n):
            setattr(ns, n, getattr(mx.sym.contrib, n))
    return ns


def sym_ops(cfg):
    """The symbol operators a network of ``cfg`` is built with: ``dcn.ops.sym_ops(builtin)``
    for ``network.BUILTIN_OPS`` (our C++ operators, or MXNet's ``mx.sym.contrib`` ones);
    with BUILTIN_OPS true MXNet's operators are used even where the library is not built."""
    builtin = bool(cfg.network.get('BUILTIN_OPS', False))
    try:
        from dcn import ops
    except (ImportError, OSError) as exc:
        if builtin:
            return builtin_sym_ops()
        raise RuntimeError(
            'network.BUILTIN_OPS is false but the compiled operator library could not be '
            'loaded (%s); run ./init.sh to build it, or set network.BUILTIN_OPS: true to use '
            "MXNet's built-in operators" % exc) from exc
    return ops.sym_ops(builtin)


# layers created by the detection heads, with their initial weight standard deviation
# (biases start at zero); layers with "offset" in the name start at zero.
_HEAD_STD = {
    'rpn_conv_3x3': 0.01, 'rpn_cls_score': 0.01, 'rpn_bbox_pred': 0.01,
    'conv_new_1': 0.01, 'rfcn_cls': 0.01, 'rfcn_bbox': 0.01,
    'fc_new_1': 0.01, 'fc_new_2': 0.01, 'cls_score': 0.01, 'bbox_pred': 0.01,
}
_ZERO_LAYERS = ('rfcn_cls_offset_t', 'rfcn_bbox_offset_t', 'offset')
# hidden (ReLU) layers of the heads: when the backbone is trained from scratch its features
# are weak at first, and these get He initialisation instead of normal(0, 0.01) so that the
# classifier receives a usable signal from the start (pretrained setups keep the original values)
_HIDDEN_HEAD_LAYERS = ('conv_new_1', 'fc_new_1', 'fc_new_2')


def _with_rpn(cfg):
    """Copy of ``cfg`` with TEST.HAS_RPN set (all parameters, RPN included)."""
    cfg = copy.deepcopy(cfg)
    cfg.TEST.HAS_RPN = True
    return cfg


class TwoStageDetector(Model):
    """Backbone + proposal generator + RoI head, each taken from its registry by name.

    Class attributes a network module sets: ``backbone`` (the backbone's spec, here a
    ResNetSpec), ``deformable``, the widths (``rpn_hidden``, ...); a family picks its parts
    with ``backbone_name``, ``proposal_generator``, ``roi_head`` and the features they read
    (``rpn_in_feature``, ``roi_in_feature``: names of the backbone's output spec).
    """

    names = DETECTION
    proposal_generator = 'rpn'
    roi_head = None
    rpn_in_feature = 'res4'
    roi_in_feature = 'res5'
    rpn_hidden = 512
    #: initialisation of the head layers (see init_weight): normal std per layer, layers
    #: starting at zero, hidden layers getting He initialisation from scratch
    head_std = _HEAD_STD
    zero_layers = _ZERO_LAYERS
    hidden_head_layers = _HIDDEN_HEAD_LAYERS

    # ------------------------------------------------------------------ parts
    def head_options(self):
        """Keyword arguments of the RoI head (its widths)."""
        return {}

    def build_proposal_generator(self):
        return PROPOSAL_GENERATORS.get(self.proposal_generator)(
            in_feature=self.rpn_in_feature, num_hidden=self.rpn_hidden)

    def build_roi_head(self):
        return ROI_HEADS.get(self.roi_head)(in_feature=self.roi_in_feature,
                                            deformable=self.deformable, **self.head_options())

    @property
    def bbox_layers(self):
        """The box-regression layers of the RoI head (stored un-normalised)."""
        return self.build_roi_head().bbox_layers

    def output_spec(self, cfg):
        """The backbone's output spec {feature: ShapeSpec(stride, channels)}."""
        return self.build_backbone(mx.sym.Variable('data'), cfg, False, sym_ops(cfg))[1]

    def anchor_levels(self, cfg):
        """[(score layer, stride)]: the maps the anchor targets are laid on."""
        return self.build_proposal_generator().anchor_levels(self.output_spec(cfg), cfg)

    # ------------------------------------------------------------------ training pieces
    def load_train_db(self, cfg, image_set):
        """The training roidb of ``image_set`` ('+'-combined), flipped copies appended with
        ``TRAIN.FLIP``, images without usable boxes filtered out."""
        from dcn.dataset import filter_roidb, load_gt_roidb
        _, roidb = load_gt_roidb(cfg, image_set, flip=cfg.TRAIN.FLIP)
        return filter_roidb(roidb)

    def build_train_loader(self, sym, roidb, cfg, batch_size, ctx, seed):
        """The training data loader of the task (inputs ``names.train_data``, labels
        ``names.train_labels``): anchor targets on the single level of the RPN."""
        return self.anchor_loader(sym, roidb, cfg, batch_size, ctx, seed,
                                  data_names=self.names.train_data)

    def train_metrics(self, cfg):
        """The detection metrics of the outputs of ``names`` (:func:`dcn.metric.
        get_train_metrics`)."""
        from dcn.metric import get_train_metrics
        return get_train_metrics(cfg, self.names)

    def max_train_shapes(self, cfg, loader, batch_size):
        """(data shapes, label shapes) of the largest training batch: the largest of
        ``SCALES`` (rounded up to ``network.IMAGE_STRIDE``), 100 gt boxes, the loader's
        labels for that size."""
        from dcn.config import get_scales
        scales = get_scales(cfg)
        max_h = max(s[0] for s in scales)
        max_w = max(s[1] for s in scales)
        stride = int(cfg.network.IMAGE_STRIDE)
        if stride > 0:
            max_h = int(np.ceil(max_h / float(stride)) * stride)
            max_w = int(np.ceil(max_w / float(stride)) * stride)
        max_data = [('data', (batch_size, 3, max_h, max_w)),
                    ('im_info', (batch_size, 3)), ('gt_boxes', (batch_size, 100, 5))]
        per_dev = batch_size // len(loader.ctx)
        _, label = loader.infer_shape([('data', (per_dev, 3, max_h, max_w))])
        label = [(k, (batch_size,) + tuple(s[1:])) for k, s in label]
        return max_data, label

    def anchor_loader(self, sym, roidb, cfg, batch_size, ctx, seed, data_names):
        """AnchorLoader on the single anchor level of the RPN, providing ``data_names``."""
        from dcn.loader import AnchorLoader
        levels = self.anchor_levels(cfg)
        if len(levels) != 1:
            raise ValueError('%s has %d anchor levels: AnchorLoader labels one; the family '
                             'must provide its own build_train_loader'
                             % (type(self).__name__, len(levels)))
        layer, stride = levels[0]
        internals = sym.get_internals()
        if output_name(layer) not in internals.list_outputs():
            raise ValueError('the training symbol of %s has no %s layer'
                             % (cfg.symbol, layer))
        return AnchorLoader(internals[output_name(layer)], roidb, cfg, batch_size=batch_size,
                            shuffle=cfg.TRAIN.SHUFFLE, ctx=ctx, feat_stride=stride,
                            anchor_scales=cfg.network.ANCHOR_SCALES,
                            anchor_ratios=cfg.network.ANCHOR_RATIOS,
                            allowed_border=cfg.TRAIN.get('RPN_ALLOWED_BORDER', 0),
                            aspect_grouping=cfg.TRAIN.ASPECT_GROUPING, seed=seed,
                            data_names=data_names)

    # ------------------------------------------------------------------ network
    def _check_cfg(self, cfg):
        try:
            num_classes = cfg.dataset.NUM_CLASSES
            num_anchors = cfg.network.NUM_ANCHORS
        except (AttributeError, KeyError) as exc:
            raise ValueError('config is missing a key needed by %s: %s'
                             % (type(self).__name__, exc)) from None
        if int(num_classes) < 2:
            raise ValueError('dataset.NUM_CLASSES must be >= 2, got %r' % (num_classes,))
        if int(num_anchors) < 1:
            raise ValueError('network.NUM_ANCHORS must be >= 1, got %r' % (num_anchors,))
        return int(num_classes), int(num_anchors)

    def get_symbol(self, cfg, is_train=False):
        """Training symbol (inputs ``names.train_data`` + ``names.train_labels``, outputs
        ``names.train_outputs``) or test symbol (inputs ``names.test_data``, outputs
        ``names.test_outputs``).

        With TEST.HAS_RPN false the test symbol takes the proposals as input ``rois``
        (N, R, 5: batch index, x1, y1, x2, y2) instead of ``im_info`` and has the outputs
        cls_prob_reshape and bbox_pred_reshape; the RPN layers are left out.
        """
        self._check_cfg(cfg)
        ops = sym_ops(cfg)
        head = self.build_roi_head()
        data = mx.sym.Variable('data')
        if not is_train and not cfg.TEST.HAS_RPN:
            # detection on given proposals (TEST.HAS_RPN false): input rois (N, R, 5)
            rois = mx.sym.Variable('rois')
            rois = mx.sym.Reshape(data=rois, shape=(-1, 5), name='rois_reshape')
            feats, spec = self.build_backbone(data, cfg, is_train, ops)
            cls_score, bbox_pred = head(feats, spec, rois, cfg, ops, is_train)
            cls_prob, bbox_pred = heads.rcnn_test_outputs(cfg, cls_score, bbox_pred)
            self.sym = mx.sym.Group([cls_prob, bbox_pred])
            return self.sym
        im_info = mx.sym.Variable('im_info')
        feats, spec = self.build_backbone(data, cfg, is_train, ops)
        rpn = self.build_proposal_generator()
        if is_train:
            from dcn.layers import proposal_target
            inputs = {n: mx.sym.Variable(n) for n in self.names.train_labels}
            gt_boxes = mx.sym.Variable('gt_boxes')
            out = rpn(feats, spec, im_info, cfg, True, inputs)
            rois, label, bbox_target, bbox_weight = proposal_target(
                out['rois'], gt_boxes, cfg, cfg.dataset.NUM_CLASSES)
            cls_score, bbox_pred = head(feats, spec, rois, cfg, ops, is_train)
            cls_prob, bbox_loss, rcnn_label = heads.rcnn_train_outputs(
                cfg, cls_score, bbox_pred, label, bbox_target, bbox_weight)
            out.update(cls_prob_reshape=cls_prob, bbox_loss_reshape=bbox_loss,
                       rcnn_label=mx.sym.BlockGrad(rcnn_label, name='rcnn_label'))
            group = mx.sym.Group([out[n] for n in self.names.train_outputs])
        else:
            rois = rpn(feats, spec, im_info, cfg, False)['rois']
            cls_score, bbox_pred = head(feats, spec, rois, cfg, ops, is_train)
            cls_prob, bbox_pred = heads.rcnn_test_outputs(cfg, cls_score, bbox_pred)
            out = {'rois': rois, 'cls_prob_reshape': cls_prob, 'bbox_pred_reshape': bbox_pred}
            group = mx.sym.Group([out[n] for n in self.names.test_outputs])
        self.sym = group
        return group

    def get_symbol_rpn(self, cfg, is_train=False):
        """The RPN alone (the original's ``get_symbol_rpn``): in training inputs ``data`` and
        the anchor labels, outputs ``rpn_cls_prob``, ``rpn_bbox_loss``; in testing inputs
        ``data``, ``im_info`` and outputs the proposals ``rois`` and their scores
        ``rois_score`` (TEST.RPN_* settings). Names: :data:`RPN_ONLY`."""
        self._check_cfg(cfg)
        ops = sym_ops(cfg)
        feats, spec = self.build_backbone(mx.sym.Variable('data'), cfg, is_train, ops)
        rpn = self.build_proposal_generator()
        if is_train:
            inputs = {n: mx.sym.Variable(n) for n in RPN_ONLY.train_labels}
            out = rpn.losses(feats, spec, cfg, inputs)
            group = mx.sym.Group([out[n] for n in RPN_ONLY.train_outputs])
        else:
            out = rpn.proposals_with_scores(feats, spec, mx.sym.Variable('im_info'), cfg)
            group = mx.sym.Group([out[n] for n in RPN_ONLY.test_outputs])
        self.sym = group
        return group

    def get_symbol_rcnn(self, cfg, is_train=False):
        """The RoI head on given proposals (the original's ``get_symbol_rfcn`` /
        ``get_symbol_rcnn``): inputs ``data``, ``rois`` (N, R, 5) and in training ``label``
        (N, R), ``bbox_target``, ``bbox_weight`` (N, R, 4 * K); outputs
        ``cls_prob_reshape``, ``bbox_loss_reshape``, ``rcnn_label`` (training) or
        ``cls_prob_reshape``, ``bbox_pred_reshape`` (testing). Names: :data:`RCNN_ONLY`."""
        if not is_train:
            cfg = copy.deepcopy(cfg)
            cfg.TEST.HAS_RPN = False
            return self.get_symbol(cfg, is_train=False)
        self._check_cfg(cfg)
        ops = sym_ops(cfg)
        nreg = heads.num_reg_classes(cfg)
        rois = mx.sym.Reshape(data=mx.sym.Variable('rois'), shape=(-1, 5), name='rois_reshape')
        label = mx.sym.Reshape(data=mx.sym.Variable('label'), shape=(-1,),
                               name='label_reshape')
        bbox_target = mx.sym.Reshape(data=mx.sym.Variable('bbox_target'),
                                     shape=(-1, 4 * nreg), name='bbox_target_reshape')
        bbox_weight = mx.sym.Reshape(data=mx.sym.Variable('bbox_weight'),
                                     shape=(-1, 4 * nreg), name='bbox_weight_reshape')
        feats, spec = self.build_backbone(mx.sym.Variable('data'), cfg, True, ops)
        cls_score, bbox_pred = self.build_roi_head()(feats, spec, rois, cfg, ops, True)
        cls_prob, bbox_loss, rcnn_label = heads.rcnn_train_outputs(
            cfg, cls_score, bbox_pred, label, bbox_target, bbox_weight)
        out = {'cls_prob_reshape': cls_prob, 'bbox_loss_reshape': bbox_loss,
               'rcnn_label': mx.sym.BlockGrad(rcnn_label, name='rcnn_label')}
        self.sym = mx.sym.Group([out[n] for n in RCNN_ONLY.train_outputs])
        return self.sym

    # ------------------------------------------------------------------ shapes
    def param_symbol_cfg(self, cfg):
        """The test graph with the RPN (TEST.HAS_RPN set): it holds every parameter."""
        return cfg if cfg.TEST.HAS_RPN else _with_rpn(cfg)

    def param_input_shapes(self, cfg, data_shape):
        if data_shape is None:
            data_shape = (cfg.TEST.BATCH_IMAGES, 3, 224, 224)
        return {'data': tuple(data_shape), 'im_info': (data_shape[0], 3)}


#: the former name of :class:`TwoStageDetector`
Detector = TwoStageDetector


class RFCN(TwoStageDetector):
    """RPN + R-FCN: position-sensitive score maps, (deformable) PS RoI pooling."""

    roi_head = 'rfcn'
    rfcn_hidden = 1024
    pooled_size = 7     # bins per side of the PS RoI pooling (k in the R-FCN paper)

    def head_options(self):
        return {'num_hidden': self.rfcn_hidden, 'pooled_size': self.pooled_size}


class FasterRCNN(TwoStageDetector):
    """RPN + Faster R-CNN 2fc head: (deformable) RoI pooling on conv_new_1, two fc layers."""

    roi_head = 'fc2'
    conv_hidden = 256
    fc_hidden = 1024

    def head_options(self):
        return {'conv_hidden': self.conv_hidden, 'fc_hidden': self.fc_hidden}
