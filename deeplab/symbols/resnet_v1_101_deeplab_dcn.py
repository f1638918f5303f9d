"""Deformable DeepLab with a ResNet-v1-101 backbone: deformable res5 3x3 convolutions
(one deformable group)."""
from dcn.symbols.deeplab import DeepLab, RESNET_V1_101_DEEPLAB


class resnet_v1_101_deeplab_dcn(DeepLab):
    backbone = RESNET_V1_101_DEEPLAB
    deformable = True
