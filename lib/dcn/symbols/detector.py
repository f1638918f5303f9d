"""Two-stage detectors (RPN + R-FCN, RPN + Faster R-CNN 2fc) on a ResNet-v1 backbone.

Network modules under ``rfcn/symbols`` and ``faster_rcnn/symbols`` subclass :class:`RFCN`
or :class:`FasterRCNN` and choose the backbone (``backbone``: a :class:`ResNetSpec`), whether
res5 and the RoI pooling are deformable (``deformable``) and the head widths.

Symbol class API (see docs/DESIGN.md): ``get_symbol(cfg, is_train)``,
``init_weight(cfg, arg_params, aux_params)``, ``get_fixed_params(cfg)``.
"""
import logging

import mxnet as mx
import numpy as np

from dcn.config import get_gpu_ids
from dcn.ops._library import mxnet_has_cuda

from . import heads
from .ops import get_sym_ops
from .resnet import RESNET_V1_101, resnet_conv4, resnet_conv5

__all__ = ['Detector', 'RFCN', 'FasterRCNN', 'DATA_NAMES', 'LABEL_NAMES', 'TEST_DATA_NAMES']

logger = logging.getLogger(__name__)

DATA_NAMES = ('data', 'im_info', 'gt_boxes')
LABEL_NAMES = ('label', 'bbox_target', 'bbox_weight')
TEST_DATA_NAMES = ('data', 'im_info')

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


def _layer_of(name):
    for suffix in ('_weight', '_bias', '_gamma', '_beta', '_moving_mean', '_moving_var'):
        if name.endswith(suffix):
            return name[:-len(suffix)], suffix[1:]
    return name, ''


def _with_rpn(cfg):
    """Copy of ``cfg`` with TEST.HAS_RPN set (all parameters, RPN included)."""
    import copy
    cfg = copy.deepcopy(cfg)
    cfg.TEST.HAS_RPN = True
    return cfg


class Detector(object):
    """Base class: backbone (conv1..res4, res5) + RPN + a detection head."""

    backbone = RESNET_V1_101
    deformable = False
    rpn_hidden = 512

    def __init__(self):
        self.sym = None
        self.arg_shape_dict = None
        self.out_shape_dict = None
        self.aux_shape_dict = None

    # ------------------------------------------------------------------ network
    def head(self, conv5, rois, cfg, sym_ops, is_train):
        """Return (cls_score (R, C), bbox_pred (R, 4*num_reg_classes))."""
        raise NotImplementedError

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
        if cfg.network.RPN_FEAT_STRIDE != 16:
            raise ValueError('network.RPN_FEAT_STRIDE must be 16 for this backbone, got %r'
                             % (cfg.network.RPN_FEAT_STRIDE,))
        return int(num_classes), int(num_anchors)

    def features(self, data, cfg, is_train, sym_ops):
        conv4 = resnet_conv4(data, self.backbone, is_train)
        conv5 = resnet_conv5(conv4, self.backbone, is_train, deformable=self.deformable,
                             sym_ops=sym_ops)
        return conv4, conv5

    def get_symbol(self, cfg, is_train=False):
        """Training symbol (inputs data, im_info, gt_boxes, label, bbox_target, bbox_weight;
        outputs rpn_cls_prob, rpn_bbox_loss, cls_prob, bbox_loss, rcnn_label) or test
        symbol (inputs data, im_info; outputs rois, cls_prob_reshape, bbox_pred_reshape).

        With TEST.HAS_RPN false the test symbol takes the proposals as input ``rois``
        (N, R, 5: batch index, x1, y1, x2, y2) instead of ``im_info`` and has the outputs
        cls_prob_reshape and bbox_pred_reshape; the RPN layers are left out.
        """
        _, num_anchors = self._check_cfg(cfg)
        sym_ops = get_sym_ops(cfg)
        from dcn.operators import rpn_proposal

        data = mx.sym.Variable('data')
        if not is_train and not cfg.TEST.HAS_RPN:
            # detection on given proposals (TEST.HAS_RPN false): input rois (N, R, 5)
            rois = mx.sym.Variable('rois')
            rois = mx.sym.Reshape(data=rois, shape=(-1, 5), name='rois_reshape')
            conv4, conv5 = self.features(data, cfg, is_train, sym_ops)
            cls_score, bbox_pred = self.head(conv5, rois, cfg, sym_ops, is_train)
            cls_prob, bbox_pred = heads.rcnn_test_outputs(cfg, cls_score, bbox_pred)
            self.sym = mx.sym.Group([cls_prob, bbox_pred])
            return self.sym
        im_info = mx.sym.Variable('im_info')
        conv4, conv5 = self.features(data, cfg, is_train, sym_ops)
        rpn_cls_score, rpn_bbox_pred = heads.rpn_head(conv4, num_anchors, self.rpn_hidden)

        if is_train:
            from dcn.operators import proposal_target
            gt_boxes = mx.sym.Variable('gt_boxes')
            rpn_label = mx.sym.Variable('label')
            rpn_bbox_target = mx.sym.Variable('bbox_target')
            rpn_bbox_weight = mx.sym.Variable('bbox_weight')
            rpn_cls_prob, rpn_bbox_loss, rpn_act = heads.rpn_train_outputs(
                cfg, rpn_cls_score, rpn_bbox_pred, rpn_label, rpn_bbox_target,
                rpn_bbox_weight, num_anchors)
            rois = rpn_proposal(rpn_act, rpn_bbox_pred, im_info, cfg, True, name='rois')
            rois, label, bbox_target, bbox_weight = proposal_target(
                rois, gt_boxes, cfg, cfg.dataset.NUM_CLASSES)
            cls_score, bbox_pred = self.head(conv5, rois, cfg, sym_ops, is_train)
            cls_prob, bbox_loss, rcnn_label = heads.rcnn_train_outputs(
                cfg, cls_score, bbox_pred, label, bbox_target, bbox_weight)
            group = mx.sym.Group([rpn_cls_prob, rpn_bbox_loss, cls_prob, bbox_loss,
                                  mx.sym.BlockGrad(rcnn_label, name='rcnn_label')])
        else:
            rpn_prob = heads.rpn_test_prob(rpn_cls_score, num_anchors)
            rois = rpn_proposal(rpn_prob, rpn_bbox_pred, im_info, cfg, False, name='rois')
            cls_score, bbox_pred = self.head(conv5, rois, cfg, sym_ops, is_train)
            cls_prob, bbox_pred = heads.rcnn_test_outputs(cfg, cls_score, bbox_pred)
            group = mx.sym.Group([rois, cls_prob, bbox_pred])
        self.sym = group
        return group

    # ------------------------------------------------------------------ shapes
    def param_shapes(self, cfg, data_shape=None):
        """(arg shape dict, aux shape dict) of the learned parameters, from infer_shape on
        the test symbol (parameter shapes do not depend on the input size). Leaves the
        symbol built last by get_symbol (``self.sym``) untouched."""
        if not cfg.TEST.HAS_RPN:
            cfg = _with_rpn(cfg)
        saved = self.sym
        try:
            sym = self.get_symbol(cfg, is_train=False)
        finally:
            self.sym = saved
        if data_shape is None:
            data_shape = (cfg.TEST.BATCH_IMAGES, 3, 224, 224)
        arg_shapes, _, aux_shapes = sym.infer_shape(data=tuple(data_shape),
                                                    im_info=(data_shape[0], 3))
        if arg_shapes is None:
            raise RuntimeError('%s: could not infer parameter shapes' % type(self).__name__)
        args = dict(zip(sym.list_arguments(), arg_shapes))
        for n in TEST_DATA_NAMES:
            args.pop(n, None)
        aux = dict(zip(sym.list_auxiliary_states(), aux_shapes))
        return args, aux

    def infer_shape(self, data_shape_dict):
        """Infer shapes of the last built symbol; fills arg/out/aux shape dicts."""
        if self.sym is None:
            raise RuntimeError('call get_symbol before infer_shape')
        arg_shapes, out_shapes, aux_shapes = self.sym.infer_shape(**data_shape_dict)
        self.arg_shape_dict = dict(zip(self.sym.list_arguments(), arg_shapes))
        self.out_shape_dict = dict(zip(self.sym.list_outputs(), out_shapes))
        self.aux_shape_dict = dict(zip(self.sym.list_auxiliary_states(), aux_shapes))
        return self.arg_shape_dict, self.out_shape_dict, self.aux_shape_dict

    # ------------------------------------------------------------------ parameters
    def get_fixed_params(self, cfg):
        """Learned argument names containing any of ``network.FIXED_PARAMS``."""
        prefixes = list(cfg.network.FIXED_PARAMS)
        args, _ = self.param_shapes(cfg)
        return [n for n in sorted(args) if any(p in n for p in prefixes)]

    def _is_head_layer(self, layer):
        return layer in _HEAD_STD or layer in _ZERO_LAYERS or layer.endswith('_offset')

    def init_weight(self, cfg, arg_params, aux_params, seed=None):
        """Initialise, in place, every parameter missing from ``arg_params``/``aux_params``.

        Head layers as the original: layers with offsets zero; RPN, R-FCN and fc layers
        normal(0, 0.01); biases zero. From scratch (``network.pretrained``
        empty) the hidden head layers ``conv_new_1`` / ``fc_new_1`` / ``fc_new_2`` get He
        initialisation instead. Backbone parameters are
        initialised from scratch (MSRA convolutions, BN gamma 1 / beta 0, moving mean 0 /
        var 1) only when ``network.pretrained`` is empty; otherwise a missing backbone
        parameter is an error. Parameters already present must have the inferred shape.
        Returns (arg_params, aux_params).
        """
        if arg_params is None or aux_params is None:
            raise ValueError('arg_params and aux_params must be dicts (possibly empty)')
        arg_shapes, aux_shapes = self.param_shapes(cfg)
        pretrained = str(cfg.network.get('pretrained', '') or '')
        rng = np.random.RandomState(seed if seed is not None else cfg.TRAIN.get('seed', 0))
        given_args, given_aux = set(arg_params), set(aux_params)
        missing_backbone = []

        for name, shape in sorted(arg_shapes.items()):
            shape = tuple(shape)
            if name in arg_params:
                have = tuple(arg_params[name].shape)
                if have != shape:
                    raise ValueError('arg_params[%r] has shape %s, the network expects %s'
                                     % (name, have, shape))
                continue
            layer, kind = _layer_of(name)
            if self._is_head_layer(layer):
                if layer.endswith('_offset') or layer in _ZERO_LAYERS or kind == 'bias':
                    value = np.zeros(shape, np.float32)
                else:
                    std = _HEAD_STD[layer]
                    if not pretrained and layer in _HIDDEN_HEAD_LAYERS:
                        std = np.sqrt(2.0 / float(np.prod(shape[1:])))
                    value = rng.normal(0.0, std, size=shape).astype(np.float32)
                arg_params[name] = mx.nd.array(value)
            elif pretrained:
                missing_backbone.append(name)
            else:
                if kind == 'gamma':
                    arg_params[name] = mx.nd.ones(shape)
                elif kind in ('beta', 'bias'):
                    arg_params[name] = mx.nd.zeros(shape)
                elif kind == 'weight':
                    # MSRA / He: normal(0, sqrt(2 / fan_in)), fan_in = in_channels * kh * kw
                    std = np.sqrt(2.0 / float(np.prod(shape[1:])))
                    arg_params[name] = mx.nd.array(
                        rng.normal(0.0, std, size=shape).astype(np.float32))
                else:
                    raise ValueError('no initialisation rule for parameter %r' % name)
        for name, shape in sorted(aux_shapes.items()):
            shape = tuple(shape)
            if name in aux_params:
                have = tuple(aux_params[name].shape)
                if have != shape:
                    raise ValueError('aux_params[%r] has shape %s, the network expects %s'
                                     % (name, have, shape))
                continue
            layer, kind = _layer_of(name)
            if pretrained:
                missing_backbone.append(name)
            elif kind == 'moving_mean':
                aux_params[name] = mx.nd.zeros(shape)
            elif kind == 'moving_var':
                aux_params[name] = mx.nd.ones(shape)
            else:
                raise ValueError('no initialisation rule for auxiliary state %r' % name)
        created = sorted(set(arg_shapes) - set(given_args)) + \
            sorted(set(aux_shapes) - set(given_aux))
        if missing_backbone:
            raise KeyError('pretrained model %r lacks %d backbone parameter(s) of %s, e.g. %s'
                           % (pretrained, len(missing_backbone), type(self).__name__,
                              ', '.join(missing_backbone[:5])))
        if created:
            logger.info('%s: initialised %d parameters (%s%s)', type(self).__name__,
                        len(created), ', '.join(created[:8]), ', ...' if len(created) > 8 else '')
        return arg_params, aux_params


class RFCN(Detector):
    """RPN + R-FCN: position-sensitive score maps, (deformable) PS RoI pooling."""

    rfcn_hidden = 1024

    def head(self, conv5, rois, cfg, sym_ops, is_train):
        # test networks that run on the CPU (an MXNet without CUDA, or no gpus in the
        # config) fuse the offset convolutions with their pooling (a CPU-only operator)
        fuse = (not is_train and hasattr(sym_ops, 'Conv1x1DeformablePSROIPooling') and
                not (get_gpu_ids(cfg) and mxnet_has_cuda()))
        return heads.rfcn_head(conv5, rois, cfg, sym_ops, self.deformable,
                               num_hidden=self.rfcn_hidden, fuse_offsets=fuse)


class FasterRCNN(Detector):
    """RPN + Faster R-CNN 2fc head: (deformable) RoI pooling on conv_new_1, two fc layers."""

    conv_hidden = 256
    fc_hidden = 1024

    def head(self, conv5, rois, cfg, sym_ops, is_train):
        return heads.fc2_head(conv5, rois, cfg, sym_ops, self.deformable,
                              conv_hidden=self.conv_hidden, fc_hidden=self.fc_hidden)
