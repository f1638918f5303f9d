"""R-FCN with a ResNet-v1-101 backbone (res5 at stride 16, dilation 2)."""
from dcn.modeling import RFCN, RESNET_V1_101


class resnet_v1_101_rfcn(RFCN):
    backbone = RESNET_V1_101
    deformable = False
