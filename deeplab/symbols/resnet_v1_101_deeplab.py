"""DeepLab with a ResNet-v1-101 backbone (output stride 16, dilated res5)."""
from dcn.symbols.deeplab import DeepLab, RESNET_V1_101_DEEPLAB


class resnet_v1_101_deeplab(DeepLab):
    backbone = RESNET_V1_101_DEEPLAB
    deformable = False
