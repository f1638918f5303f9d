"""FPN and Deformable FPN (Faster R-CNN with a feature pyramid): symbols under fpn.symbols.

Importing the package adds the family's configuration keys (the original's
``fpn/config/config.py``): ``TEST_SCALES`` (multi-scale testing, a list of [short, long]),
``TEST.USE_SOFTNMS`` and ``TEST.SOFTNMS_THRESH`` (Gaussian soft-NMS over the detections of
all scales, the threshold being the Gaussian's sigma), and a list of strides for
``network.RPN_FEAT_STRIDE`` (one per pyramid level).
"""
from dcn.config import register_defaults

register_defaults(
    'fpn',
    {'TEST_SCALES': [[600, 1000]],
     'TEST': {'USE_SOFTNMS': False, 'SOFTNMS_THRESH': 0.6}},
    alternatives={'network.RPN_FEAT_STRIDE': [4, 8, 16, 32, 64]})
