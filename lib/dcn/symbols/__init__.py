"""Layer builders shared by the network families (graph pieces with the released models'
layer names); networks are assembled from them in :mod:`dcn.modeling`.

- :mod:`dcn.symbols.resnet`: ResNet-v1 backbones (Caffe names, res5 at stride 16 with
  dilation 2, optional deformable res5).
- :mod:`dcn.symbols.heads`: RPN, R-FCN and 2fc heads, losses and test outputs.

``RFCN``, ``FasterRCNN`` (:mod:`dcn.modeling.meta_arch`) and the backbone specs are
re-exported here for the network modules of ``rfcn/`` and ``faster_rcnn/``.
"""
from .resnet import (ResNetSpec, RESNET_V1_101, RESNET_V1_50, RESNET_V1_18_SMALL,
                     resnet_conv4, resnet_conv5)
from .heads import num_reg_classes

__all__ = ['ResNetSpec', 'RESNET_V1_101', 'RESNET_V1_50', 'RESNET_V1_18_SMALL',
           'resnet_conv4', 'resnet_conv5', 'num_reg_classes', 'Detector', 'RFCN',
           'FasterRCNN']


def __getattr__(name):
    # the meta-architectures import this package: resolve them on first use
    if name in ('Detector', 'RFCN', 'FasterRCNN', 'TwoStageDetector'):
        from dcn.modeling import meta_arch
        return getattr(meta_arch, name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
