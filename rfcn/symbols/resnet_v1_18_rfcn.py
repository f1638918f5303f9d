"""R-FCN on a reduced-width ResNet-v1-18 (basic blocks; widths 32-64-96-128, res5 at
stride 16 with dilation 2) with trainable BatchNorm, for training from scratch on small data
sets on a CPU. Same layer names as the ResNet-v1-101 networks, narrower heads."""
from dcn.modeling import RFCN, RESNET_V1_18_SMALL


class resnet_v1_18_rfcn(RFCN):
    backbone = RESNET_V1_18_SMALL
    deformable = False
    rpn_hidden = 128
    rfcn_hidden = 128
