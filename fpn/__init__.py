"""FPN and Deformable FPN (Faster R-CNN with a feature pyramid): symbols under fpn.symbols.

Importing the package lets ``network.RPN_FEAT_STRIDE`` take a list of strides (one per pyramid
level). The testing keys of the original's ``fpn/config/config.py`` (``TEST_SCALES``,
``TEST.USE_SOFTNMS``, ``TEST.SOFTNMS_THRESH``) are the shared core's: every detector can test
at several scales with the original's Gaussian soft-NMS.
"""
from dcn.config import register_defaults

register_defaults('fpn', {}, alternatives={'network.RPN_FEAT_STRIDE': [4, 8, 16, 32, 64]})
