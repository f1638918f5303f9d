"""ResNet-v1 backbones with Caffe layer names, for detection.

The layout follows the ResNet-v1 Caffe models the released detectors were fine-tuned from:
``conv1``/``bn_conv1``, max pooling with the "full" convention, then stages res2..res5 whose
blocks are named ``res<stage><block>_branch<1|2a|2b|2c>`` with BatchNorm layers
``bn<stage><block>_branch...``. Bottleneck blocks put the stride in the first 1x1 convolution
(Caffe style). For detection, res5 runs at stride 16: its stride is removed and its 3x3
convolutions are dilated by 2. Optionally each res5 ``branch2b`` is a deformable convolution
whose offsets are predicted by a plain convolution ``<layer>_offset``.
"""
import copy

import mxnet as mx

__all__ = ['ResNetSpec', 'RESNET_V1_101', 'RESNET_V1_50', 'RESNET_V1_18_SMALL',
           'block_names', 'resnet_conv4', 'resnet_conv5', 'resnet_pyramid']


class ResNetSpec(object):
    """Architecture of a ResNet-v1 detection backbone.

    block:           'bottleneck' (1x1-3x3-1x1, expansion 4) or 'basic' (3x3-3x3).
    units:           number of blocks in res2..res5.
    widths:          inner width of res2..res5 (output width = width * expansion).
    stem_width:      output channels of conv1.
    numbered_stages: stages whose blocks are named a, b1, b2, ... (Caffe ResNet-101/152);
                     the others use letters a, b, c, ...
    frozen_bn:       BatchNorm always uses its moving statistics (fine-tuning a
                     pre-trained model); otherwise batch statistics are used for training.
    num_deformable_group: deformable groups of the res5 deformable convolutions.
    offset_dilated:  the offset convolutions take the dilation (and padding) of the layer
                     they serve (R-FCN, Faster R-CNN); false: 3x3, pad 1, no dilation
                     (DeepLab).
    offset_lr_mult:  None, or (weight, bias) learning-rate multipliers declared on the
                     offset convolutions' variables (DeepLab: 1.0, 2.0).
    """

    def __init__(self, block, units, widths, stem_width=64, numbered_stages=(),
                 frozen_bn=True, eps=1e-5, num_deformable_group=4, offset_dilated=True,
                 offset_lr_mult=None):
        if block not in ('bottleneck', 'basic'):
            raise ValueError("block must be 'bottleneck' or 'basic', got %r" % (block,))
        if len(units) != 4 or len(widths) != 4:
            raise ValueError('units and widths must list 4 stages (res2..res5), got %r / %r'
                             % (units, widths))
        self.block = block
        self.units = tuple(int(u) for u in units)
        self.widths = tuple(int(w) for w in widths)
        self.stem_width = int(stem_width)
        self.numbered_stages = tuple(numbered_stages)
        self.frozen_bn = bool(frozen_bn)
        self.eps = float(eps)
        self.num_deformable_group = int(num_deformable_group)
        self.offset_dilated = bool(offset_dilated)
        self.offset_lr_mult = None if offset_lr_mult is None else (
            float(offset_lr_mult[0]), float(offset_lr_mult[1]))

    def replace(self, **changes):
        """A copy with some attributes changed (``num_deformable_group=1``, ...)."""
        new = copy.copy(self)
        for k, v in changes.items():
            if not hasattr(self, k):
                raise ValueError('ResNetSpec has no attribute %r' % (k,))
            setattr(new, k, v)
        return new

    @property
    def expansion(self):
        return 4 if self.block == 'bottleneck' else 1

    @property
    def conv4_channels(self):
        """Channels of the res4 output (stride 16), where the RPN runs."""
        return self.widths[2] * self.expansion

    @property
    def conv5_channels(self):
        return self.widths[3] * self.expansion

    #: strides of the res4 and res5 outputs: conv1 and pool1 (4), res3 and res4 (x2 each);
    #: res5 keeps res4's stride (its 3x3 convolutions are dilated instead)
    conv4_stride = 16
    conv5_stride = 16

    def __repr__(self):
        return 'ResNetSpec(block=%r, units=%r, widths=%r, stem_width=%d)' % (
            self.block, self.units, self.widths, self.stem_width)


RESNET_V1_101 = ResNetSpec('bottleneck', (3, 4, 23, 3), (64, 128, 256, 512), 64,
                           numbered_stages=(3, 4), frozen_bn=True)
RESNET_V1_50 = ResNetSpec('bottleneck', (3, 4, 6, 3), (64, 128, 256, 512), 64,
                          frozen_bn=True)
# Reduced-width ResNet-v1-18 (basic blocks) trained from scratch with trainable BatchNorm.
RESNET_V1_18_SMALL = ResNetSpec('basic', (2, 2, 2, 2), (32, 64, 96, 128), 32,
                                frozen_bn=False)


def block_names(stage, units, numbered):
    """Caffe block suffixes: a, b, c, ... or a, b1, b2, ... for numbered stages."""
    if numbered:
        return ['a'] + ['b%d' % i for i in range(1, units)]
    if units > 26:
        raise ValueError('stage res%d has %d blocks: too many for letter names' % (stage, units))
    return [chr(ord('a') + i) for i in range(units)]


def _bn(data, name, spec, is_train):
    use_global = spec.frozen_bn or not is_train
    return mx.sym.BatchNorm(data=data, name=name, use_global_stats=use_global,
                            fix_gamma=False, eps=spec.eps)


def _conv(data, name, num_filter, kernel, stride=1, pad=0, dilate=1):
    return mx.sym.Convolution(data=data, name=name, num_filter=num_filter,
                              kernel=(kernel, kernel), stride=(stride, stride),
                              pad=(pad, pad), dilate=(dilate, dilate), no_bias=True)


def _conv_bn(data, prefix, spec, is_train, num_filter, kernel, stride=1, pad=0, dilate=1,
             relu=True, sym_ops=None, deformable=False):
    """Convolution ``res<prefix>`` + BatchNorm ``bn<prefix>`` (+ ReLU)."""
    name = 'res' + prefix
    if deformable:
        off_pad, off_dilate = (pad, dilate) if spec.offset_dilated else (kernel // 2, 1)
        params = {}
        if spec.offset_lr_mult is not None:
            params['weight'] = mx.sym.Variable(name + '_offset_weight',
                                               lr_mult=spec.offset_lr_mult[0])
            params['bias'] = mx.sym.Variable(name + '_offset_bias',
                                             lr_mult=spec.offset_lr_mult[1])
        offset = mx.sym.Convolution(
            data=data, name=name + '_offset', num_filter=2 * kernel * kernel *
            spec.num_deformable_group, kernel=(kernel, kernel), stride=(stride, stride),
            pad=(off_pad, off_pad), dilate=(off_dilate, off_dilate), **params)
        conv = sym_ops.DeformableConvolution(
            data=data, offset=offset, name=name, num_filter=num_filter,
            kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad),
            dilate=(dilate, dilate), num_deformable_group=spec.num_deformable_group,
            no_bias=True)
    else:
        conv = _conv(data, name, num_filter, kernel, stride, pad, dilate)
    out = _bn(conv, 'bn' + prefix, spec, is_train)
    if relu:
        out = mx.sym.Activation(data=out, act_type='relu', name=name + '_relu')
    return out


def _unit(data, spec, is_train, stage, block, width, in_channels, stride, dilate,
          deformable, sym_ops):
    """One residual block named ``res<stage><block>``."""
    base = '%d%s' % (stage, block)
    out_channels = width * spec.expansion
    pad = dilate
    if spec.block == 'bottleneck':
        b = _conv_bn(data, base + '_branch2a', spec, is_train, width, 1, stride=stride)
        b = _conv_bn(b, base + '_branch2b', spec, is_train, width, 3, pad=pad, dilate=dilate,
                     sym_ops=sym_ops, deformable=deformable)
        b = _conv_bn(b, base + '_branch2c', spec, is_train, out_channels, 1, relu=False)
    else:
        b = _conv_bn(data, base + '_branch2a', spec, is_train, width, 3, stride=stride,
                     pad=pad, dilate=dilate)
        b = _conv_bn(b, base + '_branch2b', spec, is_train, width, 3, pad=pad, dilate=dilate,
                     sym_ops=sym_ops, deformable=deformable, relu=False)
    if stride != 1 or in_channels != out_channels:
        shortcut = _conv_bn(data, base + '_branch1', spec, is_train, out_channels, 1,
                            stride=stride, relu=False)
    else:
        shortcut = data
    out = mx.sym.elemwise_add(shortcut, b, name='res' + base)
    return mx.sym.Activation(data=out, act_type='relu', name='res%s_relu' % base)


def _stage(data, spec, is_train, stage, in_channels, stride, dilate, deformable=False,
           sym_ops=None, deformable_from=0):
    """The blocks of res<stage>; with ``deformable`` the blocks from index
    ``deformable_from`` on have a deformable 3x3 convolution."""
    idx = stage - 2
    width = spec.widths[idx]
    names = block_names(stage, spec.units[idx], stage in spec.numbered_stages)
    out = data
    for i, blk in enumerate(names):
        out = _unit(out, spec, is_train, stage, blk, width,
                    in_channels if i == 0 else width * spec.expansion,
                    stride if i == 0 else 1, dilate, deformable and i >= deformable_from,
                    sym_ops)
    return out


def _stem(data, spec, is_train):
    conv1 = mx.sym.Convolution(data=data, name='conv1', num_filter=spec.stem_width,
                               kernel=(7, 7), stride=(2, 2), pad=(3, 3), no_bias=True)
    bn = _bn(conv1, 'bn_conv1', spec, is_train)
    relu = mx.sym.Activation(data=bn, act_type='relu', name='conv1_relu')
    pool1 = mx.sym.Pooling(data=relu, name='pool1', kernel=(3, 3), stride=(2, 2), pad=(0, 0),
                           pool_type='max', pooling_convention='full')
    return pool1


def resnet_conv4(data, spec, is_train):
    """conv1 .. res4: the stride-16 feature map shared by the RPN and the detection head."""
    pool1 = _stem(data, spec, is_train)
    res2 = _stage(pool1, spec, is_train, 2, spec.stem_width, 1, 1)
    res3 = _stage(res2, spec, is_train, 3, spec.widths[0] * spec.expansion, 2, 1)
    res4 = _stage(res3, spec, is_train, 4, spec.widths[1] * spec.expansion, 2, 1)
    return res4


def resnet_conv5(conv4, spec, is_train, deformable=False, sym_ops=None):
    """res5 at stride 16 (no stride, dilation 2), optionally with deformable 3x3 layers."""
    if deformable and sym_ops is None:
        raise ValueError('sym_ops is required for a deformable res5')
    return _stage(conv4, spec, is_train, 5, spec.conv4_channels, 1, 2, deformable, sym_ops)


def resnet_pyramid(data, spec, is_train, deformable=False, sym_ops=None):
    """conv1 .. res5 without dilation, for a feature pyramid: (res2, res3, res4, res5) at
    strides 4, 8, 16, 32 (res5 keeps its stride 2, on ``res5a_branch1`` and
    ``res5a_branch2a``). ``deformable``: the last block of res3 and of res4 and every res5
    block have a deformable 3x3 convolution (offsets from ``<layer>_offset``, pad 1, no
    dilation), as the original's Deformable FPN."""
    if deformable and sym_ops is None:
        raise ValueError('sym_ops is required for a deformable pyramid backbone')
    exp = spec.expansion
    pool1 = _stem(data, spec, is_train)
    res2 = _stage(pool1, spec, is_train, 2, spec.stem_width, 1, 1)
    res3 = _stage(res2, spec, is_train, 3, spec.widths[0] * exp, 2, 1, deformable, sym_ops,
                  deformable_from=spec.units[1] - 1)
    res4 = _stage(res3, spec, is_train, 4, spec.widths[1] * exp, 2, 1, deformable, sym_ops,
                  deformable_from=spec.units[2] - 1)
    res5 = _stage(res4, spec, is_train, 5, spec.widths[2] * exp, 2, 1, deformable, sym_ops)
    return res2, res3, res4, res5
