"""Deformable Faster R-CNN with a ResNet-v1-101 backbone: deformable 3x3 convolutions in res5
and deformable RoI pooling feeding the 2fc head."""
from dcn.modeling import FasterRCNN, RESNET_V1_101


class resnet_v1_101_rcnn_dcn(FasterRCNN):
    backbone = RESNET_V1_101
    deformable = True
