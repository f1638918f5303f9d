"""DeepLab's configuration keys and defaults (the original's ``deeplab/config/config.py``).

``add_deeplab_config(defaults)`` returns a copy of a defaults dict (in the form of
:data:`dcn.config.DEFAULTS`) with DeepLab's values and its own keys added:

- ``TRAIN.ENABLE_CROP`` (random crop of the resized training image), ``TRAIN.CROP_HEIGHT``
  and ``TRAIN.CROP_WIDTH``: read by the original's loader (``deeplab/core/loader.py``) but
  given no default in its config.py; the defaults here are the loader's own (no crop,
  768 x 1024), and every published file sets them;
- ``dataset.annotation_prefix`` ('gtFine'): in the original's defaults, read by nothing
  there either (the Cityscapes folder name is fixed).

The values that differ from the detection defaults are the original DeepLab defaults:
``SCALES`` [360, 600], ``default.frequent`` 1000, ``network.FIXED_PARAMS`` (conv1, bn_conv1,
res2, bn2, gamma, beta), ``network.pretrained``, the Cityscapes ``dataset`` entries,
``TRAIN.lr`` 0 and ``TRAIN.model_prefix`` 'deeplab' (the MXNet-build key, which changes
nothing here, keeps its default).

``load_deeplab_config(path)`` loads an experiment file over these defaults.
"""
import copy

from .config import DEFAULTS, load_config

__all__ = ['DEEPLAB_DEFAULTS', 'add_deeplab_config', 'load_deeplab_config',
           'deeplab_default_config']

# (+) new keys are marked; the others replace the detection defaults
DEEPLAB_DEFAULTS = {
    'output_path': '',
    'CLASS_AGNOSTIC': True,
    'SCALES': [360, 600],
    'default': {
        'frequent': 1000,
        'kvstore': 'device',
    },
    'network': {
        'pretrained': '../model/pretrained_model/resnet_v1-101',
        'pretrained_epoch': 0,
        'PIXEL_MEANS': [103.06, 115.90, 123.15],
        'IMAGE_STRIDE': 0,
        'FIXED_PARAMS': ['conv1', 'bn_conv1', 'res2', 'bn2', 'gamma', 'beta'],
    },
    'dataset': {
        'dataset': 'cityscapes',
        'image_set': 'leftImg8bit_train',
        'test_image_set': 'leftImg8bit_val',
        'root_path': '../data',
        'dataset_path': '../data/cityscapes',
        'NUM_CLASSES': 19,
        'annotation_prefix': 'gtFine',      # (+)
    },
    'TRAIN': {
        'lr': 0.0,
        'lr_step': '',
        'warmup': False,
        'warmup_lr': 0.0,
        'warmup_step': 0,
        'momentum': 0.9,
        'wd': 0.0005,
        'begin_epoch': 0,
        'end_epoch': 0,
        'model_prefix': 'deeplab',
        'RESUME': False,
        'FLIP': True,
        'SHUFFLE': True,
        'ENABLE_OHEM': False,
        'BATCH_IMAGES': 1,
        'ENABLE_CROP': False,               # (+)
        'CROP_HEIGHT': 768,                 # (+)
        'CROP_WIDTH': 1024,                 # (+)
    },
    'TEST': {
        'BATCH_IMAGES': 1,
        'test_epoch': 0,
    },
}


def _update(dst, src):
    for k, v in src.items():
        if isinstance(v, dict):
            if k in dst and not isinstance(dst[k], dict):
                raise ValueError('DeepLab defaults: %r is a section here but a value in the '
                                 'defaults given' % k)
            _update(dst.setdefault(k, {}), v)
        else:
            dst[k] = copy.deepcopy(v)


def add_deeplab_config(defaults):
    """Copy of ``defaults`` with DeepLab's keys and values (the argument is not changed)."""
    out = copy.deepcopy(defaults)
    _update(out, DEEPLAB_DEFAULTS)
    return out


def deeplab_default_config():
    """EasyDict of the DeepLab defaults (over :data:`dcn.config.DEFAULTS`)."""
    from .config import default_config
    return default_config(add_deeplab_config(DEFAULTS))


def load_deeplab_config(path):
    """Load a DeepLab experiment YAML over the DeepLab defaults."""
    return load_config(path, defaults=add_deeplab_config(DEFAULTS))
