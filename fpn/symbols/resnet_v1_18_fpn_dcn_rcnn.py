"""Deformable FPN on a reduced-width ResNet-v1-18 (basic blocks, widths 32-64-96-128, no
dilation) with trainable BatchNorm, for training from scratch on Shapes on a CPU: pyramid of
64 channels with BatchNorm after its convolutions (from scratch, the unnormalised pyramid of
the original diverges at the learning rates the other Shapes networks train at), RPN 64,
fc 256."""
from dcn.modeling import RESNET_V1_18_SMALL
from dcn.modeling.fpn import FPNRCNN


class resnet_v1_18_fpn_dcn_rcnn(FPNRCNN):
    backbone = RESNET_V1_18_SMALL
    deformable = True
    feature_dim = 64
    rpn_hidden = 64
    fc_hidden = 256
    pyramid_norm = True
