"""FPN: ResNet-v1-101 without dilation, feature pyramid P2-P6 (256 channels), RPN shared
across levels, FPN RoI pooling (ROIPooling on the RoI's level) and the 2fc head."""
from dcn.modeling import RESNET_V1_101
from dcn.modeling.fpn import FPNRCNN


class resnet_v1_101_fpn_rcnn(FPNRCNN):
    backbone = RESNET_V1_101
    deformable = False
