"""Faster R-CNN (2fc head) on a reduced-width ResNet-v1-18 (basic blocks; widths
32-64-96-128, res5 at stride 16 with dilation 2) with trainable BatchNorm, for training from
scratch on small data sets on a CPU. Same layer names as the ResNet-v1-101 networks,
narrower heads."""
from dcn.modeling import FasterRCNN, RESNET_V1_18_SMALL


class resnet_v1_18_rcnn(FasterRCNN):
    backbone = RESNET_V1_18_SMALL
    deformable = False
    rpn_hidden = 128
    conv_hidden = 64
    fc_hidden = 256
