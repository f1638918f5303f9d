import copy
import glob
import importlib
import json
import logging
import os

import numpy as np
import pytest
import yaml

import dcn.config
from dcn.config import (DEFAULTS, NO_EFFECT, config_files, config_to_dict, get_contexts,
                        get_scales, load_config, no_effect_keys, register_defaults,
                        update_config)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the original experiment files (shared/ beside the checkout) of the two families built
# here, R-FCN and Faster R-CNN, and ours
_SHARED = os.path.join(os.path.dirname(ROOT), 'shared', 'reference-configs')
if not os.path.isdir(_SHARED):
    _SHARED = '/work/shared/reference-configs'
ORIGINAL = sorted(glob.glob(os.path.join(_SHARED, 'rfcn', '*.yaml')) +
                  glob.glob(os.path.join(_SHARED, 'faster_rcnn', '*.yaml')))
REF = ORIGINAL + sorted(glob.glob(os.path.join(ROOT, 'experiments', '*', 'cfgs', '*.yaml')))
# the default of every key of the original's rfcn/config/config.py (= faster_rcnn's)
with open(os.path.join(ROOT, 'tests', 'data', 'original_config_defaults.json')) as _f:
    ORIGINAL_DEFAULTS = json.load(_f)['defaults']


def load_experiment(path):
    """Load an experiment file as its family's entry points do (the family folder
    ``experiments/<family>/cfgs/`` or ``reference-configs/<family>/`` names the package,
    whose ``load_config``, if any, brings its own defaults)."""
    from dcn.tools.main import load_family_config
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) == 'cfgs':
        folder = os.path.dirname(folder)
    return load_family_config(os.path.basename(folder), path)


def _write(tmp_path, text, name='exp.yaml'):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize('path', REF, ids=[os.path.basename(p) for p in REF])
def test_every_reference_config_loads_with_its_values(path):
    cfg = load_experiment(path)
    # every value of the file (and of its _BASE_ files, which it overrides) is found in the
    # loaded config
    raw = {}
    for _, data in config_files(path):
        for sec, v in data.items():
            if isinstance(v, dict):
                raw.setdefault(sec, {}).update(v)
            else:
                raw[sec] = v
    for sec, v in raw.items():
        if isinstance(v, dict):
            for k, vv in v.items():
                got = cfg[sec][k]
                if isinstance(got, np.ndarray):
                    np.testing.assert_allclose(got, vv)
                else:
                    assert got == vv, (sec, k)
        else:
            assert cfg[sec] == v, sec
    assert cfg.network.PIXEL_MEANS.shape == (3,)
    assert cfg.config_name == os.path.splitext(os.path.basename(path))[0]


def test_reference_configs_found():
    assert len([p for p in REF if 'reference-configs' in p]) == 11


def test_defaults_and_additions(tmp_path):
    cfg = load_config(_write(tmp_path, 'symbol: foo\n'))
    assert cfg.network.BUILTIN_OPS is False
    assert 'depth' not in cfg.network and 'USE_GPU_NMS' not in cfg.TEST
    assert cfg.TRAIN.seed == 0 and cfg.TRAIN.RPN_ALLOWED_BORDER == 0
    assert cfg.TRAIN.momentum == 0.9 and cfg.TRAIN.wd == 0.0005
    assert cfg.TRAIN.clip_gradient is None
    assert cfg.TEST.SOFT_NMS is False and cfg.TEST.max_per_image == 300  # the original's
    assert cfg.default.prefetch == 2
    assert get_contexts(cfg)[0].device_type == 'cpu'


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, 'TRAIN:\n  lr: 0.1\n  LRR: 3\n')
    with pytest.raises(ValueError) as e:
        load_config(p)
    assert 'TRAIN.LRR' in str(e.value) and p in str(e.value)
    with pytest.raises(ValueError, match='bogus'):
        load_config(_write(tmp_path, 'bogus: 1\n'))


@pytest.mark.parametrize('text,key', [
    ('TRAIN:\n  lr: fast\n', 'TRAIN.lr'),
    ('TRAIN:\n  FLIP: 1\n', 'TRAIN.FLIP'),
    ('TRAIN:\n  end_epoch: 2.5\n', 'TRAIN.end_epoch'),
    ('SCALES: [600]\n', 'SCALES'),
    ('network:\n  PIXEL_MEANS: [1, 2]\n', 'network.PIXEL_MEANS'),
    ('network:\n  FIXED_PARAMS: conv1\n', 'network.FIXED_PARAMS'),
    ('gpus: [0, 1]\n', 'gpus'),
    ('gpus: "a,b"\n', 'gpus'),
    ('TRAIN:\n  lr_step: "x"\n', 'TRAIN.lr_step'),
    ('TRAIN: 3\n', 'TRAIN'),
    ('TEST:\n  SOFT_NMS_METHOD: cubic\n', 'TEST.SOFT_NMS_METHOD'),
    ('TRAIN:\n  clip_gradient: big\n', 'TRAIN.clip_gradient'),
    ('network:\n  NUM_ANCHORS: 12\n', 'NUM_ANCHORS'),
])
def test_wrong_type_names_key(tmp_path, text, key):
    p = _write(tmp_path, text)
    with pytest.raises(ValueError) as e:
        load_config(p)
    assert key in str(e.value) and p in str(e.value)


def test_int_for_float_and_strings(tmp_path):
    cfg = load_config(_write(tmp_path, 'TRAIN:\n  lr: 1\n  lr_step: 5\n  clip_gradient: 5\n'
                                       'gpus: 0\nSCALES: [[300, 500], [400, 600]]\n'))
    assert isinstance(cfg.TRAIN.lr, float) and cfg.TRAIN.lr == 1.0
    assert cfg.TRAIN.lr_step == '5' and cfg.gpus == '0'
    assert cfg.TRAIN.clip_gradient == 5.0
    assert get_scales(cfg) == [(300, 500), (400, 600)]


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        load_config(str(tmp_path / 'nope.yaml'))
    p = _write(tmp_path, 'TRAIN: [unclosed\n')
    with pytest.raises(ValueError, match='exp.yaml'):
        load_config(p)


def test_contexts_and_update(tmp_path):
    cfg = load_config(_write(tmp_path, 'gpus: "0,2"\n'))
    ctx = get_contexts(cfg)
    assert [(c.device_type, c.device_id) for c in ctx] == [('gpu', 0), ('gpu', 2)]
    cfg2 = update_config(cfg, {'TRAIN': {'lr': 0.5}})
    assert cfg2.TRAIN.lr == 0.5 and cfg.TRAIN.lr != 0.5
    with pytest.raises(ValueError, match='TRAIN.nope'):
        update_config(cfg, {'TRAIN': {'nope': 1}})
    d = config_to_dict(cfg2)
    assert yaml.safe_load(yaml.safe_dump(d))['TRAIN']['lr'] == 0.5


def _flat(d, prefix=''):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, prefix + k + '.')
        else:
            yield prefix + k, v


def _get(cfg, key):
    for part in key.split('.'):
        cfg = cfg[part]
    return cfg


def test_every_key_of_the_original_is_accepted():
    ours = dict(_flat(DEFAULTS))
    missing = sorted(set(dict(_flat(ORIGINAL_DEFAULTS))) - set(ours))
    assert missing == []
    # the alternate-training keys with the original's defaults
    for key, value in _flat(ORIGINAL_DEFAULTS['TRAIN']['ALTERNATE'], 'TRAIN.ALTERNATE.'):
        assert ours[key] == value, key
    assert ours['TEST.max_per_image'] == ORIGINAL_DEFAULTS['TEST']['max_per_image'] == 300


def _original_load(path):
    """The original's update_config: its defaults, each section's keys replaced by the
    file's (SCALES becomes the list of one (short, long) pair)."""
    cfg = copy.deepcopy(ORIGINAL_DEFAULTS)
    for k, v in yaml.safe_load(open(path)).items():
        assert k in cfg, k
        if isinstance(v, dict):
            cfg[k].update(v)
        elif k == 'SCALES':
            cfg[k][0] = list(v)
        else:
            cfg[k] = v
    return cfg


@pytest.mark.parametrize('path', ORIGINAL, ids=[os.path.basename(p) for p in ORIGINAL])
def test_published_configs_load_as_the_original(path):
    # every key of the original's configuration has, for a published file, the value the
    # original gives it (the file's, else the original's default)
    cfg = load_config(path)
    for key, want in _flat(_original_load(path)):
        got = _get(cfg, key)
        if key == 'SCALES':
            assert get_scales(cfg) == [tuple(p) for p in want]
        elif isinstance(want, list) and all(isinstance(x, str) for x in want):
            assert list(got) == want, key
        elif isinstance(got, np.ndarray) or isinstance(want, list):
            np.testing.assert_allclose(np.asarray(got, dtype=float),
                                       np.asarray(want, dtype=float), err_msg=key)
        else:
            assert got == want, key


class _Records(logging.Handler):
    def __init__(self):
        super(_Records, self).__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _warnings_of(fn, *args):
    handler = _Records()
    log = logging.getLogger('dcn.config')
    log.addHandler(handler)
    try:
        fn(*args)
    finally:
        log.removeHandler(handler)
    return handler.messages


def test_keys_without_effect_are_named_in_one_warning(tmp_path):
    p = _write(tmp_path, 'MXNET_VERSION: mxnet\nTRAIN:\n  lr: 0.1\n  END2END: true\n'
                         '  ALTERNATE:\n    rpn1_lr: 0.001\n    rpn1_lr_step: 2\n'
                         'TEST:\n  PROPOSAL_MIN_SIZE: 0\n  NMS: 0.4\n')
    messages = _warnings_of(load_config, p)
    assert len(messages) == 1 and '\n' not in messages[0]
    msg = messages[0]
    assert p in msg
    for key in ('MXNET_VERSION', 'TRAIN.END2END', 'TEST.PROPOSAL_MIN_SIZE'):
        assert key in msg
    # alternate training reads TRAIN.ALTERNATE.* (dcn.engine.proposals)
    assert 'TRAIN.lr' not in msg and 'TEST.NMS' not in msg and 'ALTERNATE' not in msg
    cfg = load_config(p)
    assert cfg.TRAIN.ALTERNATE.rpn1_lr == 0.001 and cfg.TRAIN.ALTERNATE.rpn1_lr_step == '2'
    # a file setting only keys that act: no warning
    assert _warnings_of(load_config, _write(tmp_path, 'TRAIN:\n  lr: 0.1\n', 'b.yaml')) == []
    # the published files name the keys they set without effect
    msg = _warnings_of(load_config, ORIGINAL[0])[0]
    assert 'TEST.PROPOSAL_NMS_THRESH' in msg and 'TRAIN.lr,' not in msg


def test_no_effect_keys_are_read_by_nothing():
    # each key declared without effect is read nowhere in lib/, rfcn/, faster_rcnn/
    sources = []
    for folder in ('lib/dcn', 'rfcn', 'faster_rcnn'):
        for path in glob.glob(os.path.join(ROOT, folder, '**', '*.py'), recursive=True):
            if not path.endswith(os.path.join('dcn', 'config.py')):
                sources.append(open(path).read())
    text = '\n'.join(sources)
    for key in NO_EFFECT:
        leaf = key.split('.')[-1]
        for pattern in (key, "get('%s'" % leaf, "['%s']" % leaf):
            assert pattern not in text, (key, pattern)
    assert no_effect_keys(['TRAIN.ALTERNATE.rpn2_epoch', 'TRAIN.lr', 'TRAIN.END2END']) == \
        ['TRAIN.END2END']


# ------------------------------------------------------------------ _BASE_ inheritance


def test_base_file_is_read_first_and_overridden(tmp_path):
    (tmp_path / 'sub').mkdir()
    _write(tmp_path, 'symbol: base_net\nTRAIN:\n  lr: 0.1\n  end_epoch: 7\n', 'base.yaml')
    _write(tmp_path, '_BASE_: ../base.yaml\nTRAIN:\n  lr: 0.2\n', 'sub/mid.yaml')
    child = _write(tmp_path, '_BASE_: mid.yaml\nTEST:\n  NMS: 0.4\n', 'sub/child.yaml')
    cfg = load_config(child)
    assert cfg.symbol == 'base_net' and cfg.TRAIN.end_epoch == 7   # from the first base
    assert cfg.TRAIN.lr == 0.2                                      # the middle file wins
    assert cfg.TEST.NMS == 0.4 and cfg.TRAIN.momentum == 0.9        # own key, default
    assert cfg.config_name == 'child'                               # named after the file
    assert [os.path.basename(p) for p, _ in config_files(child)] == ['base.yaml', 'mid.yaml',
                                                                      'child.yaml']


def test_base_errors_name_the_file(tmp_path):
    bad = _write(tmp_path, 'TRAIN:\n  LRR: 1\n', 'bad_base.yaml')
    child = _write(tmp_path, '_BASE_: bad_base.yaml\nsymbol: x\n', 'child.yaml')
    with pytest.raises(ValueError) as e:
        load_config(child)
    assert 'TRAIN.LRR' in str(e.value) and bad in str(e.value)
    missing = _write(tmp_path, '_BASE_: nowhere.yaml\n', 'missing.yaml')
    with pytest.raises(FileNotFoundError) as e:
        load_config(missing)
    assert missing in str(e.value) and 'nowhere.yaml' in str(e.value)
    _write(tmp_path, '_BASE_: loop_b.yaml\n', 'loop_a.yaml')
    _write(tmp_path, '_BASE_: loop_a.yaml\n', 'loop_b.yaml')
    with pytest.raises(ValueError, match='cycle'):
        load_config(str(tmp_path / 'loop_a.yaml'))
    with pytest.raises(ValueError, match='_BASE_'):
        load_config(_write(tmp_path, '_BASE_: 3\n', 'num.yaml'))


def test_shapes_configs_are_deltas_over_one_base():
    files = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*', 'cfgs', 'shapes_*.yaml')))
    assert len(files) == 16  # rfcn 6, faster_rcnn 4, fpn 3, deeplab 3 (plain, deformable, mini)
    for path in files:
        chain = [os.path.relpath(p, ROOT) for p, _ in config_files(path)]
        assert chain[0] == os.path.join('experiments', 'shapes_base.yaml'), chain
        assert len(open(path).read().splitlines()) < 30, path


# ------------------------------------------------------------------ schema extensions


@pytest.fixture
def restore_schema():
    saved = (copy.deepcopy(DEFAULTS), dict(dcn.config._REGISTERED),
             dict(dcn.config._CHOICES), list(dcn.config._NO_EFFECT_EXTRA))
    yield
    DEFAULTS.clear()
    DEFAULTS.update(saved[0])
    dcn.config._REGISTERED.clear()
    dcn.config._REGISTERED.update(saved[1])
    dcn.config._CHOICES.clear()
    dcn.config._CHOICES.update(saved[2])
    dcn.config._NO_EFFECT_EXTRA[:] = saved[3]


def test_family_adds_keys_without_editing_config(tmp_path, restore_schema):
    path = _write(tmp_path, 'TRAIN:\n  ENABLE_CROP: true\n  CROP_HEIGHT: 768\n'
                            'seg:\n  mode: b\n')
    with pytest.raises(ValueError, match='TRAIN.ENABLE_CROP'):
        load_config(path)                      # not a key before the family registers it
    register_defaults('toyseg', {'TRAIN': {'ENABLE_CROP': False, 'CROP_HEIGHT': 512},
                                 'seg': {'mode': 'a'}}, choices={'seg.mode': ('a', 'b')})
    register_defaults('toyseg', {'TRAIN': {'ENABLE_CROP': False}})   # same again: no-op
    assert 'TRAIN.CROP_HEIGHT' in dcn.config.registered_keys('toyseg')
    cfg = load_config(path)
    assert cfg.TRAIN.ENABLE_CROP is True and cfg.TRAIN.CROP_HEIGHT == 768 and cfg.seg.mode == 'b'
    assert cfg.TRAIN.lr == DEFAULTS['TRAIN']['lr']
    # registered keys are type-checked and unknown keys still fail, naming key and file
    with pytest.raises(ValueError, match='TRAIN.CROP_HEIGHT'):
        load_config(_write(tmp_path, 'TRAIN:\n  CROP_HEIGHT: tall\n', 'b.yaml'))
    with pytest.raises(ValueError, match='seg.mode'):
        load_config(_write(tmp_path, 'seg:\n  mode: c\n', 'c.yaml'))
    p = _write(tmp_path, 'seg:\n  mdoe: a\n', 'd.yaml')
    with pytest.raises(ValueError) as e:
        load_config(p)
    assert 'seg.mdoe' in str(e.value) and p in str(e.value)
    # no family may change an existing key
    with pytest.raises(ValueError, match='TRAIN.lr'):
        register_defaults('other', {'TRAIN': {'lr': 1.0}})
