"""DeepLab and Deformable DeepLab (semantic segmentation): symbols under deeplab.symbols.

Experiment files load over the DeepLab defaults (:func:`dcn.config_deeplab.load_deeplab_config`);
the entry points (``experiments/deeplab``) find that loader here as ``load_config``.
"""
from dcn.config_deeplab import load_deeplab_config as load_config  # noqa: F401
