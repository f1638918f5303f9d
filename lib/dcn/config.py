"""Experiment configuration.

``load_config(path)`` reads an experiment YAML file over the complete defaults below and
returns an :class:`easydict.EasyDict`. A file may name a base file, ``_BASE_: other.yaml``
(relative to the file itself), which is read first; the file then overrides some of its
values (bases may have bases). A model family extends the schema with its own keys through
:func:`register_defaults` (``add_xxx_config``-style) without editing this module. Every key of the original code base's configuration
(``rfcn/config/config.py``, ``faster_rcnn/config/config.py``) is accepted, with the
original's defaults; the keys that have no effect here (:data:`NO_EFFECT`) are named in a
one-line warning when a file sets them. An unknown key or a value of the wrong type raises
``ValueError`` naming the key and the file.

Type rules: a key takes the type of its default; integers are accepted where a float is
expected; ``gpus`` and ``TRAIN.lr_step`` are strings (a bare YAML number is turned into its
string, e.g. ``lr_step: 5`` -> ``'5'``); ``SCALES`` is ``[short, long]`` (or a list of such
pairs for multi-scale training); ``network.PIXEL_MEANS`` (B, G, R order) becomes a numpy
array, as the original code base did. Keys whose default is ``None`` accept ``null`` or
the type listed in ``_NULLABLE``.
"""
import copy
import difflib
import logging
import os

import numpy as np
import yaml
from easydict import EasyDict

# ----------------------------------------------------------------------------------------
# Defaults: every key a config file may set. Keys marked (+) are this project's additions
# to the original code base's set.
# ----------------------------------------------------------------------------------------
DEFAULTS = {
    'MXNET_VERSION': 'mxnet',
    'output_path': './output',
    'symbol': '',
    'gpus': '',                         # '' -> CPU; '0,1' -> two GPUs
    'CLASS_AGNOSTIC': True,             # R-FCN: True (8 box outputs); Faster R-CNN: False
    'SCALES': [600, 1000],              # [short side, max long side]
    'TEST_SCALES': [],                  # testing scales [[short, long], ...]; [] -> SCALES[0]
    'config_name': '',                  # (+) set from the file name when empty
    'default': {
        'frequent': 20,                 # Speedometer period (batches)
        'kvstore': 'device',
        'prefetch': 2,                  # (+) data loader prefetch threads
    },
    'network': {
        'pretrained': '',
        'pretrained_epoch': 0,
        'PIXEL_MEANS': [103.06, 115.90, 123.15],   # B, G, R
        'IMAGE_STRIDE': 0,
        'RPN_FEAT_STRIDE': 16,
        'RCNN_FEAT_STRIDE': 16,
        'FIXED_PARAMS': ['gamma', 'beta'],
        'FIXED_PARAMS_SHARED': ['gamma', 'beta'],
        'ANCHOR_SCALES': [8, 16, 32],
        'ANCHOR_RATIOS': [0.5, 1, 2],
        'NUM_ANCHORS': 9,
        'BUILTIN_OPS': False,           # (+) use MXNet's mx.sym.contrib operators
    },
    'dataset': {
        'dataset': 'PascalVOC',
        'image_set': '2007_trainval',
        'test_image_set': '2007_test',
        'root_path': './data',
        'dataset_path': './data/VOCdevkit',
        'NUM_CLASSES': 21,
        'proposal': 'rpn',
    },
    'TRAIN': {
        'lr': 0.0005,
        'lr_step': '',                  # epochs, comma separated, e.g. '4.83'
        'lr_factor': 0.1,
        'warmup': False,
        'warmup_lr': 0.0,
        'warmup_step': 0,
        'momentum': 0.9,                # (+)
        'wd': 0.0005,                   # (+)
        'clip_gradient': None,          # (+) null = no clipping (as the original)
        'seed': 0,                      # (+) random seed (numpy, python, mxnet)
        'ORIGINAL_QUIRKS': False,       # (+) the original's sampling quirks (docs/DESIGN.md)
        'begin_epoch': 0,
        'end_epoch': 0,
        'model_prefix': '',
        # alternate (4-step) training of the original
        'ALTERNATE': {
            'RPN_BATCH_IMAGES': 0,
            'RCNN_BATCH_IMAGES': 0,
            'rpn1_lr': 0.0, 'rpn1_lr_step': '', 'rpn1_epoch': 0,
            'rfcn1_lr': 0.0, 'rfcn1_lr_step': '', 'rfcn1_epoch': 0,
            'rpn2_lr': 0.0, 'rpn2_lr_step': '', 'rpn2_epoch': 0,
            'rfcn2_lr': 0.0, 'rfcn2_lr_step': '', 'rfcn2_epoch': 0,
            'rpn3_lr': 0.0, 'rpn3_lr_step': '', 'rpn3_epoch': 0,
        },
        'RESUME': False,
        'FLIP': True,
        'SHUFFLE': True,
        'ENABLE_OHEM': False,
        'BATCH_IMAGES': 1,
        'END2END': True,
        'ASPECT_GROUPING': True,
        # R-CNN RoI sampling
        'BATCH_ROIS': 128,
        'BATCH_ROIS_OHEM': 128,
        'FG_FRACTION': 0.25,
        'FG_THRESH': 0.5,
        'BG_THRESH_HI': 0.5,
        'BG_THRESH_LO': 0.0,
        'BBOX_REGRESSION_THRESH': 0.5,
        'BBOX_WEIGHTS': [1.0, 1.0, 1.0, 1.0],
        # RPN anchor targets
        'RPN_BATCH_SIZE': 256,
        'RPN_FG_FRACTION': 0.5,
        'RPN_POSITIVE_OVERLAP': 0.7,
        'RPN_NEGATIVE_OVERLAP': 0.3,
        'RPN_CLOBBER_POSITIVES': False,
        'RPN_BBOX_WEIGHTS': [1.0, 1.0, 1.0, 1.0],
        'RPN_POSITIVE_WEIGHT': -1.0,
        'RPN_ALLOWED_BORDER': 0,        # (+) anchors may cross the border by this many px
        # RPN proposals during training
        'CXX_PROPOSAL': False,
        'RPN_NMS_THRESH': 0.7,
        'RPN_PRE_NMS_TOP_N': 12000,
        'RPN_POST_NMS_TOP_N': 2000,
        'RPN_MIN_SIZE': 0,
        # box regression target normalisation
        'BBOX_NORMALIZATION_PRECOMPUTED': True,
        'BBOX_MEANS': [0.0, 0.0, 0.0, 0.0],
        'BBOX_STDS': [0.1, 0.1, 0.2, 0.2],
    },
    'TEST': {
        'HAS_RPN': True,
        'BATCH_IMAGES': 1,
        'CXX_PROPOSAL': False,
        'RPN_NMS_THRESH': 0.7,
        'RPN_PRE_NMS_TOP_N': 6000,
        'RPN_POST_NMS_TOP_N': 300,
        'RPN_MIN_SIZE': 0,
        'PROPOSAL_NMS_THRESH': 0.7,
        'PROPOSAL_PRE_NMS_TOP_N': 20000,
        'PROPOSAL_POST_NMS_TOP_N': 2000,
        'PROPOSAL_MIN_SIZE': 0,
        'NMS': 0.3,
        'SCORE_THRESH': 0.001,          # (+) detections below this score are dropped
        'max_per_image': 300,
        'test_epoch': 0,
        'USE_SOFTNMS': False,           # the original FPN's Gaussian soft-NMS (any detector)
        'SOFTNMS_THRESH': 0.6,          # its sigma: scores times exp(-IoU^2 / SOFTNMS_THRESH)
        'SOFT_NMS': False,              # (+) soft-NMS instead of NMS for the final boxes
        'SOFT_NMS_METHOD': 'linear',    # (+) 'linear' or 'gaussian'
        'SOFT_NMS_SIGMA': 0.5,          # (+) gaussian soft-NMS sigma
    },
}

# keys of the original's configuration that change nothing here: a file setting them gets
# one warning naming them
NO_EFFECT = (
    'MXNET_VERSION',                    # the original's choice of an MXNet build
    'TRAIN.END2END',                    # the original's loader/metric switch (a graph per
                                        # pipeline here, dcn.engine.proposals)
    'TRAIN.RPN_POSITIVE_WEIGHT',        # read by nothing, in the original too
    'TEST.PROPOSAL_NMS_THRESH',         # TEST.PROPOSAL_*: read by nothing in the original
    'TEST.PROPOSAL_PRE_NMS_TOP_N',      # either (its RPN-only test graph uses TEST.RPN_*)
    'TEST.PROPOSAL_POST_NMS_TOP_N',
    'TEST.PROPOSAL_MIN_SIZE',
)

_log = logging.getLogger(__name__)

# keys whose default is None: the type they take when set
_NULLABLE = {'TRAIN.clip_gradient': float}
# keys with a fixed set of values
_CHOICES = {'TEST.SOFT_NMS_METHOD': ('linear', 'gaussian')}
#: the key naming a file's base file
BASE_KEY = '_BASE_'
# keys added by the families (register_defaults): {full key: family name}
_REGISTERED = {}
_NO_EFFECT_EXTRA = []
# further types an existing key accepts (register_defaults(alternatives=)): {key: [value]}
_ALTERNATIVES = {}


def _flat_keys(tree, prefix=''):
    for k, v in tree.items():
        if isinstance(v, dict):
            for key in _flat_keys(v, prefix + k + '.'):
                yield key
        else:
            yield prefix + k


def register_defaults(family, keys, choices=None, nullable=None, no_effect=(),
                      alternatives=None):
    """Add a family's configuration keys to the schema (detectron2's ``add_xxx_config``).

    ``keys`` is a nested dict of new keys and their defaults (a new section, or new keys in
    an existing section: ``{'TRAIN': {'ENABLE_CROP': False}}``); ``choices`` / ``nullable``
    map full dotted names to a tuple of allowed values / the type a None default takes;
    ``no_effect`` names keys that are accepted but change nothing; ``alternatives`` maps an
    existing key to a value of another type that it also accepts, checked like a default of
    that type (FPN: ``{'network.RPN_FEAT_STRIDE': [4, 8, 16, 32, 64]}``, a list of strides
    where the other families give one), its default unchanged. A key may be added once
    (registering the same family's keys again with the same defaults is a no-op); changing
    an existing key's default is an error, so that no family changes another's meaning.
    """
    def merge(dst, src, prefix):
        for k, v in src.items():
            key = prefix + str(k)
            if isinstance(v, dict):
                if k in dst and not isinstance(dst[k], dict):
                    raise ValueError('register_defaults(%s): %r is a key, not a section'
                                     % (family, key))
                merge(dst.setdefault(k, {}), v, key + '.')
            elif k in dst:
                if _REGISTERED.get(key) == family and dst[k] == v:
                    continue
                raise ValueError('register_defaults(%s): key %r exists already (default %r)'
                                 % (family, key, dst[k]))
            else:
                dst[k] = copy.deepcopy(v)
                _REGISTERED[key] = family
    merge(DEFAULTS, keys, '')
    _CHOICES.update(choices or {})
    _NULLABLE.update(nullable or {})
    for key in no_effect:
        if key not in _NO_EFFECT_EXTRA:
            _NO_EFFECT_EXTRA.append(key)
    for key, value in (alternatives or {}).items():
        node = DEFAULTS
        for part in key.split('.'):
            if not isinstance(node, dict) or part not in node:
                raise ValueError('register_defaults(%s): alternative for unknown key %r'
                                 % (family, key))
            node = node[part]
        kinds = _ALTERNATIVES.setdefault(key, [])
        if all(type(v) is not type(value) for v in kinds):
            kinds.append(copy.deepcopy(value))


def registered_keys(family=None):
    """Full names of the keys added by ``family`` (all families when None)."""
    return sorted(k for k, f in _REGISTERED.items() if family is None or f == family)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _err(key, path, msg):
    return ValueError('config %s: key %r %s' % (path, key, msg))


def _check_scales(v, key, path):
    if key == 'TEST_SCALES' and isinstance(v, (list, tuple)) and len(v) == 0:
        return []
    def pair(p):
        return (isinstance(p, (list, tuple)) and len(p) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in p))
    if pair(v):
        return [int(v[0]), int(v[1])]
    if isinstance(v, (list, tuple)) and len(v) > 0 and all(pair(p) for p in v):
        return [[int(p[0]), int(p[1])] for p in v]
    raise _err(key, path, 'must be [short, long] (positive ints) or a list of such pairs, got %r' % (v,))


def _default_is_str_list(key):
    """Whether the built-in default of ``key`` (dotted) is a non-empty list of strings."""
    node = DEFAULTS
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, list) and bool(node) and all(isinstance(x, str) for x in node)


def _coerce(key, default, v, path):
    """Return ``v`` checked against (and converted to) the type of ``default``."""
    if key in _CHOICES:
        if v not in _CHOICES[key]:
            raise _err(key, path, 'must be one of %s, got %r' % (list(_CHOICES[key]), v))
        return v
    if key in ('SCALES', 'TEST_SCALES'):
        return _check_scales(v, key, path)
    if key in ('gpus', 'TRAIN.lr_step') or (key.startswith('TRAIN.ALTERNATE.') and
                                            key.endswith('_lr_step')):
        if v is None:
            return ''
        if _is_number(v):
            return str(v)
        if not isinstance(v, str):
            raise _err(key, path, 'must be a string (e.g. %s), got %r' %
                       ("'0,1'" if key == 'gpus' else "'4.83'", v))
        return v
    if key == 'network.PIXEL_MEANS':
        if not (isinstance(v, (list, tuple)) and len(v) == 3 and all(_is_number(x) for x in v)):
            raise _err(key, path, 'must be a list of 3 numbers (B, G, R), got %r' % (v,))
        return [float(x) for x in v]
    if default is None:
        want = _NULLABLE[key]
        if v is None:
            return None
        if want is float and _is_number(v):
            return float(v)
        if isinstance(v, want) and not isinstance(v, bool):
            return v
        raise _err(key, path, 'must be null or %s, got %r' % (want.__name__, v))
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise _err(key, path, 'must be true or false, got %r' % (v,))
        return v
    if isinstance(default, int):
        if not (isinstance(v, int) and not isinstance(v, bool)):
            raise _err(key, path, 'must be an integer, got %r' % (v,))
        return v
    if isinstance(default, float):
        if not _is_number(v):
            raise _err(key, path, 'must be a number, got %r' % (v,))
        return float(v)
    if isinstance(default, str):
        if not isinstance(v, str):
            raise _err(key, path, 'must be a string, got %r' % (v,))
        return v
    if isinstance(default, list):
        if not isinstance(v, (list, tuple)):
            raise _err(key, path, 'must be a list, got %r' % (v,))
        # a list of strings (typed by its default; a base file may have emptied it)
        if (default and all(isinstance(x, str) for x in default)) or \
                (not default and v and all(isinstance(x, str) for x in v) and
                 _default_is_str_list(key)):
            if not all(isinstance(x, str) for x in v):
                raise _err(key, path, 'must be a list of strings, got %r' % (v,))
            return list(v)
        if not all(_is_number(x) for x in v):
            raise _err(key, path, 'must be a list of numbers, got %r' % (v,))
        if len(default) == 4 and len(v) != 4:
            raise _err(key, path, 'must have 4 entries, got %r' % (v,))
        if all(isinstance(x, float) for x in default):
            return [float(x) for x in v]
        return list(v)
    raise _err(key, path, 'has an unsupported default type')  # pragma: no cover


def _coerce_any(key, default, v, path):
    """:func:`_coerce` against the default, else against a registered alternative of the
    value's type (the error of the default's type when none fits)."""
    try:
        return _coerce(key, default, v, path)
    except ValueError:
        for alt in _ALTERNATIVES.get(key, ()):
            if isinstance(v, (list, tuple)) == isinstance(alt, list):
                return _coerce(key, alt, v, path)
        raise


def _merge(dst, src, prefix, path, seen=None):
    """Merge ``src`` into ``dst`` (checked); appends the full names of the keys set to
    ``seen``."""
    if not isinstance(src, dict):
        raise ValueError('config %s: %s must be a mapping, got %r'
                         % (path, repr(prefix.rstrip('.')) if prefix else 'the file', src))
    for k, v in src.items():
        key = prefix + str(k)
        if k not in dst:
            close = difflib.get_close_matches(str(k), [str(n) for n in dst], n=1, cutoff=0.6)
            if not close:
                close = [n for n in dst if str(n).lower() == str(k).lower()]
            hint = ('; did you mean %r?' % (prefix + close[0])) if close else \
                '; remove it or check its spelling'
            raise ValueError('config %s: unknown key %r%s' % (path, key, hint))
        if isinstance(dst[k], dict):
            if v is None:
                continue
            _merge(dst[k], v, key + '.', path, seen)
        else:
            dst[k] = _coerce_any(key, dst[k], v, path)
            if seen is not None:
                seen.append(key)


def no_effect_keys(keys):
    """The keys among ``keys`` (full dotted names) that have no effect here."""
    inert = tuple(NO_EFFECT) + tuple(_NO_EFFECT_EXTRA)
    return [k for k in keys if any(k == n or k.startswith(n + '.') for n in inert)]


def _warn_no_effect(keys, path):
    inert = no_effect_keys(keys)
    if inert:
        _log.warning('config %s: no effect here (kept for the original\'s files): %s',
                     path, ', '.join(inert))


def _finalize(cfg, path):
    cfg['network']['PIXEL_MEANS'] = np.array(cfg['network']['PIXEL_MEANS'], dtype=np.float32)
    na = len(cfg['network']['ANCHOR_SCALES']) * len(cfg['network']['ANCHOR_RATIOS'])
    if cfg['network']['NUM_ANCHORS'] != na:
        raise ValueError('config %s: key network.NUM_ANCHORS is %d but ANCHOR_SCALES x ANCHOR_RATIOS '
                         'gives %d anchors' % (path, cfg['network']['NUM_ANCHORS'], na))
    if cfg['dataset']['NUM_CLASSES'] < 2:
        raise ValueError('config %s: key dataset.NUM_CLASSES must be >= 2 (background included)' % path)
    _gpu_ids(cfg['gpus'], path)
    for s in str(cfg['TRAIN']['lr_step']).split(','):
        if s.strip():
            try:
                float(s)
            except ValueError:
                raise ValueError('config %s: key TRAIN.lr_step must be comma-separated epochs '
                                 '(e.g. \'4.83\'), got %r' % (path, cfg['TRAIN']['lr_step'])) from None


def default_config(defaults=None):
    """A fresh EasyDict holding the defaults (PIXEL_MEANS as a numpy array); ``defaults``
    replaces :data:`DEFAULTS` (e.g. ``dcn.config_deeplab.add_deeplab_config(DEFAULTS)``)."""
    cfg = copy.deepcopy(DEFAULTS if defaults is None else defaults)
    _finalize(cfg, '<defaults>')
    return EasyDict(cfg)


def _read_yaml(path):
    if not os.path.isfile(path):
        raise FileNotFoundError('config file not found: %s (check the --cfg path)' % path)
    with open(path, 'r') as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError('config %s: not valid YAML: %s' % (path, exc)) from None
    if data is not None and not isinstance(data, dict):
        raise ValueError('config %s: the file must be a mapping of keys, got %r' % (path, data))
    return data or {}


def config_files(path):
    """[(file, its keys without ``_BASE_``)] from the first base to ``path`` itself."""
    chain = []
    path = os.fspath(path)
    while True:
        real = os.path.realpath(path)
        if real in [os.path.realpath(p) for p, _ in chain]:
            raise ValueError('config %s: key %r forms a cycle (%s)' % (
                chain[-1][0], BASE_KEY, ' -> '.join([p for p, _ in reversed(chain)] + [path])))
        try:
            data = _read_yaml(path)
        except FileNotFoundError:
            if chain:
                raise FileNotFoundError('config %s: key %r names %s, which does not exist'
                                        % (chain[-1][0], BASE_KEY, path)) from None
            raise
        data = dict(data)
        base = data.pop(BASE_KEY, None)
        chain.append((path, data))
        if base is None:
            break
        if not isinstance(base, str) or not base:
            raise ValueError('config %s: key %r must name a YAML file (relative to this '
                             'file), got %r' % (path, BASE_KEY, base))
        path = os.path.join(os.path.dirname(path), base)
    return list(reversed(chain))


def load_config(path, defaults=None):
    """Load the experiment YAML ``path`` (after its ``_BASE_`` files) over the defaults;
    returns an EasyDict. Each file's keys are checked and errors name the file setting them.

    ``defaults`` (a nested dict in the form of :data:`DEFAULTS`) replaces the defaults, and
    with them the set of accepted keys, for a network family with keys of its own (e.g.
    ``dcn.config_deeplab.add_deeplab_config(DEFAULTS)``); :func:`register_defaults` adds a
    family's keys to :data:`DEFAULTS` itself."""
    path = os.fspath(path)
    cfg = copy.deepcopy(DEFAULTS if defaults is None else defaults)
    seen = []
    for file_path, data in config_files(path):
        _merge(cfg, data, '', file_path, seen)
    _warn_no_effect(list(dict.fromkeys(seen)), path)
    if not cfg['config_name']:
        cfg['config_name'] = os.path.splitext(os.path.basename(path))[0]
    _finalize(cfg, path)
    return EasyDict(cfg)


def update_config(cfg, overrides, source='<overrides>'):
    """Apply a nested dict of overrides to a loaded config (same checks as the file)."""
    plain = _to_plain(cfg)
    seen = []
    _merge(plain, overrides, '', source, seen)
    _warn_no_effect(seen, source)
    _finalize(plain, source)
    return EasyDict(plain)


def _to_plain(d):
    if isinstance(d, dict):
        return {k: _to_plain(v) for k, v in d.items()}
    if isinstance(d, np.ndarray):
        return d.tolist()
    if isinstance(d, tuple):
        return list(d)
    return copy.deepcopy(d)


def config_to_dict(cfg):
    """Plain nested dict of ``cfg`` (numpy arrays as lists), e.g. for ``yaml.safe_dump``."""
    return _to_plain(cfg)


def original_quirks(cfg):
    """``TRAIN.ORIGINAL_QUIRKS``: train with the original's data order, gt box rounding,
    RoI gap filling, anchor labelling, proposal padding and warmup on resume, where this
    project differs on purpose (docs/DESIGN.md, "Where we differ from the original")."""
    return bool(cfg.TRAIN.get('ORIGINAL_QUIRKS', False))


def get_test_scales(cfg):
    """List of (short, long) testing scales: ``TEST_SCALES`` (each scale tests the whole set,
    the detections are merged before the final NMS, as the original FPN tester) or, when it
    is empty, the first of ``SCALES``."""
    test_scales = cfg.get('TEST_SCALES') or []
    if test_scales and isinstance(test_scales[0], (int, np.integer)):
        test_scales = [test_scales]
    return [tuple(int(x) for x in s) for s in test_scales] or get_scales(cfg)[:1]


def get_scales(cfg):
    """List of (short, long) training/testing scales from ``cfg.SCALES``."""
    s = cfg.SCALES
    if len(s) == 2 and all(isinstance(x, (int, np.integer)) for x in s):
        return [(int(s[0]), int(s[1]))]
    return [(int(p[0]), int(p[1])) for p in s]


def _gpu_ids(gpus, path):
    gpus = '' if gpus is None else str(gpus).strip()
    ids = []
    if gpus:
        for tok in gpus.split(','):
            tok = tok.strip()
            if not tok.isdigit():
                raise ValueError('config %s: key \'gpus\' must be comma-separated GPU ids like '
                                 '\'0,1\' (or empty for CPU), got %r' % (path, gpus))
            ids.append(int(tok))
    return ids


def get_gpu_ids(cfg):
    """List of GPU ids in ``cfg.gpus`` (empty for CPU)."""
    return _gpu_ids(cfg['gpus'], '<config>')


def get_contexts(cfg):
    """List of mx.Context for ``cfg.gpus`` ('' -> [mx.cpu()], '0,2' -> [mx.gpu(0), mx.gpu(2)])."""
    ids = get_gpu_ids(cfg)
    import mxnet as mx
    if not ids:
        return [mx.cpu()]
    return [mx.gpu(i) for i in ids]
