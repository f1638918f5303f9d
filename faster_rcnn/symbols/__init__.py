"""Faster R-CNN network modules, one per network; each defines a class of the module's name.

- resnet_v1_101_rcnn:     ResNet-v1-101, 7x7 RoI pooling at 1/16 and a 2fc head
                          (released ``rcnn_coco`` model).
- resnet_v1_101_rcnn_dcn: deformable res5 and deformable RoI pooling
                          (released ``rcnn_dcn_coco`` model).
- resnet_v1_18_rcnn / resnet_v1_18_rcnn_dcn: reduced-width ResNet-v1-18 (basic blocks,
  trainable BatchNorm) with narrower heads, for training from scratch on small data.

Usage::

    sym_cls = getattr(importlib.import_module('faster_rcnn.symbols.' + cfg.symbol), cfg.symbol)
    sym = sym_cls().get_symbol(cfg, is_train=False)
"""
