"""Backbones: ``build(data, cfg, is_train, sym_ops, **options) -> (features, output_spec)``.

``features`` maps feature names to symbols, ``output_spec`` maps them to
:class:`~dcn.modeling.registry.ShapeSpec` (stride, channels). The proposal generator and
the RoI head name the features they use, and take the strides from the spec.
"""
from dcn.symbols.resnet import resnet_conv4, resnet_conv5

from .registry import BACKBONES, ShapeSpec

__all__ = ['build_resnet_v1']


@BACKBONES.register('resnet_v1')
def build_resnet_v1(data, cfg, is_train, sym_ops, spec=None, deformable=False):
    """ResNet-v1 (``spec``: a :class:`~dcn.symbols.resnet.ResNetSpec`): features ``res4``
    (the RPN's input) and ``res5`` (dilated, optionally deformable; the RoI head's input)."""
    conv4 = resnet_conv4(data, spec, is_train)
    conv5 = resnet_conv5(conv4, spec, is_train, deformable=deformable, sym_ops=sym_ops)
    return ({'res4': conv4, 'res5': conv5},
            {'res4': ShapeSpec(spec.conv4_stride, spec.conv4_channels),
             'res5': ShapeSpec(spec.conv5_stride, spec.conv5_channels)})
