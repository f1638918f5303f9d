"""Deformable DeepLab on the reduced-width ResNet-v1-18: deformable res5 ``branch2b`` 3x3
convolutions (one deformable group), fc6 256."""
from dcn.symbols.deeplab import DeepLab, RESNET_V1_18_SMALL_DEEPLAB


class resnet_v1_18_deeplab_dcn(DeepLab):
    backbone = RESNET_V1_18_SMALL_DEEPLAB
    deformable = True
    fc6_hidden = 256
