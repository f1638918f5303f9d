"""DeepLab network modules, one per network; each defines a class of the module's name.

- resnet_v1_101_deeplab:     ResNet-v1-101, output stride 16 (released
                             ``deeplab_cityscapes`` model).
- resnet_v1_101_deeplab_dcn: the same with deformable res5 (``deeplab_dcn_cityscapes``).
- resnet_v1_18_deeplab / resnet_v1_18_deeplab_dcn: reduced-width ResNet-v1-18 (basic blocks,
  trainable BatchNorm) with a narrower fc6, for training from scratch on small data.

Usage::

    sym_cls = getattr(importlib.import_module('deeplab.symbols.' + cfg.symbol), cfg.symbol)
    sym = sym_cls().get_symbol(cfg, is_train=False)
"""
