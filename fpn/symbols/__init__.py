"""FPN network modules, one per network; each defines a class of the module's name.

- resnet_v1_101_fpn_rcnn:     ResNet-v1-101 (no dilation) + feature pyramid P2-P6, shared
                              RPN, FPN RoI pooling and a 2fc head (released ``fpn_coco``).
- resnet_v1_101_fpn_dcn_rcnn: five deformable 3x3 layers (res3b3, res4b22, res5a-c) and
                              deformable FPN RoI pooling (released ``fpn_dcn_coco``).
- resnet_v1_18_fpn_rcnn / resnet_v1_18_fpn_dcn_rcnn: reduced-width ResNet-v1-18 with
  trainable BatchNorm and narrower pyramid and heads, for training from scratch on Shapes.
"""
