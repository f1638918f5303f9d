"""Network builders shared by the R-FCN and Faster R-CNN symbol modules.

- :mod:`dcn.symbols.resnet`: ResNet-v1 backbones (Caffe names, res5 at stride 16 with
  dilation 2, optional deformable res5).
- :mod:`dcn.symbols.heads`: RPN, R-FCN and 2fc heads, losses and test outputs.
- :mod:`dcn.symbols.detector`: :class:`RFCN` and :class:`FasterRCNN` with the symbol class
  API (``get_symbol``, ``init_weight``, ``get_fixed_params``).
- :mod:`dcn.symbols.ops`: choice of compiled or built-in deformable operators.
"""
from .detector import Detector, RFCN, FasterRCNN, DATA_NAMES, LABEL_NAMES, TEST_DATA_NAMES
from .resnet import (ResNetSpec, RESNET_V1_101, RESNET_V1_50, RESNET_V1_18_SMALL,
                     resnet_conv4, resnet_conv5)
from .heads import num_reg_classes
from .ops import get_sym_ops

__all__ = ['Detector', 'RFCN', 'FasterRCNN', 'DATA_NAMES', 'LABEL_NAMES', 'TEST_DATA_NAMES',
           'ResNetSpec', 'RESNET_V1_101', 'RESNET_V1_50', 'RESNET_V1_18_SMALL',
           'resnet_conv4', 'resnet_conv5', 'num_reg_classes', 'get_sym_ops']
