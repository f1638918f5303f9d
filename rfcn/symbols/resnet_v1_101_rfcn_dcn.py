"""Deformable R-FCN with a ResNet-v1-101 backbone: deformable 3x3 convolutions in res5 and
deformable position-sensitive RoI pooling."""
from dcn.modeling import RFCN, RESNET_V1_101


class resnet_v1_101_rfcn_dcn(RFCN):
    backbone = RESNET_V1_101
    deformable = True
