"""Deformable FPN: FPN with deformable res3b3 / res4b22 / res5a-c 3x3 convolutions and
deformable RoI pooling on each RoI's level (per-level offset FC, lr_mult 0.01)."""
from dcn.modeling import RESNET_V1_101
from dcn.modeling.fpn import FPNRCNN


class resnet_v1_101_fpn_dcn_rcnn(FPNRCNN):
    backbone = RESNET_V1_101
    deformable = True
