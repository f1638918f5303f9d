"""DeepLab (and Deformable DeepLab) semantic segmentation on a ResNet-v1 backbone, as the
original's ``deeplab/symbols/resnet_v1_101_deeplab[_dcn].py``.

Network: conv1..res4 (stride 16), res5 without stride and with its 3x3 convolutions dilated
by 2 (output stride 16, no ASPP); in the deformable variant the three res5 ``branch2b``
layers are DeformableConvolutions (1 deformable group) whose offsets come from 3x3
convolutions ``<layer>_offset`` (18 outputs, pad 1, no dilation, bias; lr_mult 1 / 2).
Head: ``fc6`` (1x1, 1024, bias; lr_mult 1 / 2) + ReLU ``relu_fc6``, ``score`` (1x1,
num_classes; lr_mult 1 / 2), ``upsampling`` (Deconvolution, kernel 32, stride 16, one group
per class, no bias, declared with ``lr_mult`` 0 so its bilinear weight stays fixed),
``croped_score`` (Crop to the input size at offset (8, 8)) and ``softmax`` (SoftmaxOutput,
multi_output, ignore label 255, 'valid' normalisation).

Test symbol: inputs ``data``, ``softmax_label`` (unused, inferred as (N, H*W)); output
``softmax_output`` (N, C, H, W). Training symbol: inputs ``data``, ``label`` (N, 1, H, W);
same output.

Symbol class API (docs/DESIGN.md): ``get_symbol(cfg, is_train)``, ``init_weight(cfg,
arg_params, aux_params)``, ``get_fixed_params(cfg)``, ``param_shapes(cfg)``.
"""
import logging

import mxnet as mx
import numpy as np

from dcn.modeling.meta_arch import _layer_of, sym_ops as _sym_ops
from dcn.modeling.names import NameTable
from dcn.modeling.registry import BACKBONES, SEM_SEG_HEADS

from .resnet import RESNET_V1_101, RESNET_V1_18_SMALL

__all__ = ['DeepLab', 'RESNET_V1_101_DEEPLAB', 'RESNET_V1_18_SMALL_DEEPLAB', 'IGNORE_LABEL',
           'seg_softmax', 'bilinear_upsampling_weight']

logger = logging.getLogger(__name__)

IGNORE_LABEL = 255

# DeepLab's deformable res5: one deformable group, plain 3x3 offset convolutions (pad 1, no
# dilation) with lr_mult 1 (weight) / 2 (bias)
RESNET_V1_101_DEEPLAB = RESNET_V1_101.replace(num_deformable_group=1, offset_dilated=False,
                                              offset_lr_mult=(1.0, 2.0))
RESNET_V1_18_SMALL_DEEPLAB = RESNET_V1_18_SMALL.replace(num_deformable_group=1,
                                                        offset_dilated=False,
                                                        offset_lr_mult=(1.0, 2.0))

_HEAD_STD = {'fc6': 0.01, 'score': 0.01}

#: names of the segmentation graph (the test symbol also takes the unused ``softmax_label``)
SEGMENTATION = NameTable('semantic segmentation', train_data=('data',), train_labels=('label',),
                         train_outputs=('softmax',), test_data=('data',),
                         test_outputs=('softmax',))


@SEM_SEG_HEADS.register('deeplab')
def deeplab_head(feature, data, num_classes, fc6_hidden=1024):
    """``fc6`` + ReLU, ``score``, the frozen bilinear ``upsampling`` (x16) and
    ``croped_score`` (Crop to ``data`` at offset (8, 8)): per-pixel class scores."""
    fc6 = mx.sym.Convolution(
        data=feature, name='fc6', kernel=(1, 1), pad=(0, 0), num_filter=fc6_hidden,
        weight=mx.sym.Variable('fc6_weight', lr_mult=1.0),
        bias=mx.sym.Variable('fc6_bias', lr_mult=2.0))
    relu_fc6 = mx.sym.Activation(data=fc6, act_type='relu', name='relu_fc6')
    score = mx.sym.Convolution(
        data=relu_fc6, name='score', kernel=(1, 1), pad=(0, 0), num_filter=num_classes,
        weight=mx.sym.Variable('score_weight', lr_mult=1.0),
        bias=mx.sym.Variable('score_bias', lr_mult=2.0))
    # attr lr_mult on the operator: MXNet puts __lr_mult__ 0.0 on upsampling_weight
    upsampling = mx.sym.Deconvolution(
        data=score, name='upsampling', num_filter=num_classes, kernel=(32, 32),
        stride=(16, 16), num_group=num_classes, no_bias=True, attr={'lr_mult': '0.0'})
    return mx.sym.Crop(upsampling, data, offset=(8, 8), name='croped_score')


def seg_softmax(croped_score, label=None, name='softmax'):
    """Pixel-wise softmax loss: multi_output, ignore label 255, 'valid' normalisation (the
    loss is averaged over the pixels whose label is not 255). Without ``label`` MXNet
    creates the input ``softmax_label``."""
    kw = {} if label is None else {'label': label}
    return mx.sym.SoftmaxOutput(data=croped_score, normalization='valid', multi_output=True,
                                use_ignore=True, ignore_label=IGNORE_LABEL, name=name, **kw)


def bilinear_upsampling_weight(shape):
    """The bilinear kernel MXNet's ``Initializer._init_bilinear`` gives an array of ``shape``
    (the original initialises ``upsampling_weight`` with it)."""
    arr = mx.nd.zeros(shape)
    mx.init.Initializer()._init_bilinear('upsampling_weight', arr)
    return arr


class DeepLab(object):
    """Base class of the DeepLab network modules (``deeplab/symbols``)."""

    names = SEGMENTATION
    backbone_name = 'resnet_v1'
    sem_seg_head = 'deeplab'
    in_feature = 'res5'
    backbone = RESNET_V1_101_DEEPLAB
    deformable = False
    fc6_hidden = 1024

    def __init__(self):
        self.sym = None
        self.arg_shape_dict = None
        self.out_shape_dict = None
        self.aux_shape_dict = None

    # ------------------------------------------------------------------ network
    def _num_classes(self, cfg):
        try:
            num_classes = int(cfg.dataset.NUM_CLASSES)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError('config is missing dataset.NUM_CLASSES needed by %s: %s'
                             % (type(self).__name__, exc)) from None
        if num_classes < 2:
            raise ValueError('dataset.NUM_CLASSES must be >= 2, got %r' % (num_classes,))
        return num_classes

    def build_backbone(self, data, cfg, is_train, ops):
        """(features, output spec) of the registered backbone ``backbone_name``."""
        return BACKBONES.get(self.backbone_name)(data, cfg, is_train, ops, spec=self.backbone,
                                                 deformable=self.deformable)

    def get_symbol(self, cfg, is_train=False):
        num_classes = self._num_classes(cfg)
        ops = _sym_ops(cfg) if self.deformable else None
        data = mx.sym.Variable('data')
        label = mx.sym.Variable('label') if is_train else None
        feats, _ = self.build_backbone(data, cfg, is_train, ops)
        croped_score = SEM_SEG_HEADS.get(self.sem_seg_head)(
            feats[self.in_feature], data, num_classes, fc6_hidden=self.fc6_hidden)
        self.sym = seg_softmax(croped_score, label)
        return self.sym

    # ------------------------------------------------------------------ shapes
    def param_shapes(self, cfg, data_shape=None):
        """(arg shape dict, aux shape dict) of the learned parameters (they do not depend on
        the input size); leaves ``self.sym`` untouched."""
        saved = self.sym
        try:
            sym = self.get_symbol(cfg, is_train=False)
        finally:
            self.sym = saved
        if data_shape is None:
            data_shape = (1, 3, 224, 224)
        arg_shapes, _, aux_shapes = sym.infer_shape(data=tuple(data_shape))
        if arg_shapes is None:
            raise RuntimeError('%s: could not infer parameter shapes' % type(self).__name__)
        args = dict(zip(sym.list_arguments(), arg_shapes))
        for n in ('data', 'softmax_label', 'label'):
            args.pop(n, None)
        return args, dict(zip(sym.list_auxiliary_states(), aux_shapes))

    def infer_shape(self, data_shape_dict):
        """Infer shapes of the last built symbol; fills arg/out/aux shape dicts."""
        if self.sym is None:
            raise RuntimeError('call get_symbol before infer_shape')
        arg_shapes, out_shapes, aux_shapes = self.sym.infer_shape(**data_shape_dict)
        if arg_shapes is None:
            raise ValueError('%s: cannot infer shapes from %s' % (type(self).__name__,
                                                                  data_shape_dict))
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

    @staticmethod
    def _is_head_layer(layer):
        return layer in _HEAD_STD or layer == 'upsampling' or layer.endswith('_offset')

    def init_weight(self, cfg, arg_params, aux_params, seed=None):
        """Initialise, in place, every parameter missing from ``arg_params``/``aux_params``.

        As the original: offset layers zero; ``fc6`` and ``score`` normal(0, 0.01) with zero
        biases; ``upsampling_weight`` bilinear. From scratch (``network.pretrained`` empty)
        ``fc6``, the hidden ReLU layer, gets He initialisation instead, and the backbone
        MSRA convolutions, BN gamma 1 / beta 0, moving mean 0 / var 1; with a pretrained
        model a missing backbone parameter is a KeyError. A present parameter must have
        the inferred shape. Returns (arg_params, aux_params).
        """
        if arg_params is None or aux_params is None:
            raise ValueError('arg_params and aux_params must be dicts (possibly empty)')
        arg_shapes, aux_shapes = self.param_shapes(cfg)
        pretrained = str(cfg.network.get('pretrained', '') or '')
        rng = np.random.RandomState(seed if seed is not None else cfg.TRAIN.get('seed', 0))
        missing, created = [], []
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
                if layer == 'upsampling':
                    value = bilinear_upsampling_weight(shape)
                elif layer.endswith('_offset') or kind == 'bias':
                    value = mx.nd.zeros(shape)
                else:
                    std = _HEAD_STD[layer]
                    if not pretrained and layer == 'fc6':
                        std = np.sqrt(2.0 / float(np.prod(shape[1:])))
                    value = mx.nd.array(rng.normal(0.0, std, size=shape).astype(np.float32))
            elif pretrained:
                missing.append(name)
                continue
            elif kind == 'gamma':
                value = mx.nd.ones(shape)
            elif kind in ('beta', 'bias'):
                value = mx.nd.zeros(shape)
            elif kind == 'weight':
                std = np.sqrt(2.0 / float(np.prod(shape[1:])))     # MSRA / He, fan-in
                value = mx.nd.array(rng.normal(0.0, std, size=shape).astype(np.float32))
            else:
                raise ValueError('no initialisation rule for parameter %r' % name)
            arg_params[name] = value
            created.append(name)
        for name, shape in sorted(aux_shapes.items()):
            shape = tuple(shape)
            if name in aux_params:
                have = tuple(aux_params[name].shape)
                if have != shape:
                    raise ValueError('aux_params[%r] has shape %s, the network expects %s'
                                     % (name, have, shape))
                continue
            _, kind = _layer_of(name)
            if pretrained:
                missing.append(name)
                continue
            if kind == 'moving_mean':
                aux_params[name] = mx.nd.zeros(shape)
            elif kind == 'moving_var':
                aux_params[name] = mx.nd.ones(shape)
            else:
                raise ValueError('no initialisation rule for auxiliary state %r' % name)
            created.append(name)
        if missing:
            raise KeyError('pretrained model %r lacks %d backbone parameter(s) of %s, e.g. %s'
                           % (pretrained, len(missing), type(self).__name__,
                              ', '.join(missing[:5])))
        if created:
            logger.info('%s: initialised %d parameters (%s%s)', type(self).__name__,
                        len(created), ', '.join(created[:8]), ', ...' if len(created) > 8 else '')
        return arg_params, aux_params
