import glob
import os

import numpy as np
import pytest
import yaml

from dcn.config import get_contexts, get_scales, load_config, update_config, config_to_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the original experiment files (shared/ beside the checkout) and ours
_SHARED = os.path.join(os.path.dirname(ROOT), 'shared', 'reference-configs')
if not os.path.isdir(_SHARED):
    _SHARED = '/work/shared/reference-configs'
REF = sorted(glob.glob(os.path.join(_SHARED, '*', '*.yaml')) +
             glob.glob(os.path.join(ROOT, 'experiments', '*', 'cfgs', '*.yaml')))


def _write(tmp_path, text, name='exp.yaml'):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize('path', REF, ids=[os.path.basename(p) for p in REF])
def test_every_reference_config_loads_with_its_values(path):
    cfg = load_config(path)
    raw = yaml.safe_load(open(path))
    # every value of the file is found in the loaded config
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
    assert cfg.network.depth == 101
    assert cfg.TRAIN.seed == 0 and cfg.TRAIN.RPN_ALLOWED_BORDER == 0
    assert cfg.TRAIN.momentum == 0.9 and cfg.TRAIN.wd == 0.0005
    assert cfg.TRAIN.clip_gradient is None
    assert cfg.TEST.SOFT_NMS is False and cfg.TEST.max_per_image == 100
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
