"""Faster R-CNN with a ResNet-v1-101 backbone and a 2fc head on 7x7 RoI pooling at 1/16."""
from dcn.modeling import FasterRCNN, RESNET_V1_101


class resnet_v1_101_rcnn(FasterRCNN):
    backbone = RESNET_V1_101
    deformable = False
