"""R-FCN network modules, one per network; each defines a class of the module's name.

- resnet_v1_101_rfcn:     ResNet-v1-101, R-FCN (released ``rfcn_coco`` model).
- resnet_v1_101_rfcn_dcn: ResNet-v1-101 with deformable res5 and deformable PS RoI pooling
                          (released ``rfcn_dcn_coco`` model).
- resnet_v1_18_rfcn / resnet_v1_18_rfcn_dcn: reduced-width ResNet-v1-18 (basic blocks,
  trainable BatchNorm) with the same heads, for training from scratch on small data.

Usage::

    sym_cls = getattr(importlib.import_module('rfcn.symbols.' + cfg.symbol), cfg.symbol)
    sym = sym_cls().get_symbol(cfg, is_train=False)
"""
