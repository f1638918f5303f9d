"""DeepLab on a reduced-width ResNet-v1-18 (basic blocks; widths 32-64-96-128, res5 at stride
16 with dilation 2) with trainable BatchNorm and a 256-wide fc6, for training from scratch on
small data sets on a CPU. Same layer names as the ResNet-v1-101 network."""
from dcn.symbols.deeplab import DeepLab, RESNET_V1_18_SMALL_DEEPLAB


class resnet_v1_18_deeplab(DeepLab):
    backbone = RESNET_V1_18_SMALL_DEEPLAB
    deformable = False
    fc6_hidden = 256
