"""DeepLab configuration: the original's five experiment files over DeepLab's defaults."""
import glob
import json
import os

import numpy as np
import pytest
import yaml

from dcn.config import DEFAULTS, get_scales, load_config, update_config
from dcn.config_deeplab import (DEEPLAB_DEFAULTS, add_deeplab_config, deeplab_default_config,
                                load_deeplab_config)

from _util import ROOT, flat

_SHARED = os.path.join(os.path.dirname(ROOT), 'shared', 'reference-configs')
if not os.path.isdir(_SHARED):
    _SHARED = '/work/shared/reference-configs'
DEEPLAB_YAMLS = sorted(glob.glob(os.path.join(_SHARED, 'deeplab', '*.yaml')))
with open(os.path.join(ROOT, 'tests', 'data', 'original_deeplab_config_defaults.json')) as _f:
    ORIGINAL = json.load(_f)['defaults']


def _get(cfg, key):
    for part in key.split('.'):
        cfg = cfg[part]
    return cfg


def _same(got, want, key):
    if isinstance(got, np.ndarray):
        np.testing.assert_allclose(got, want, err_msg=key)
    else:
        assert got == want and type(got) in (type(want), float), (key, got, want)


def test_five_reference_files_found():
    assert len(DEEPLAB_YAMLS) == 5


@pytest.mark.parametrize('path', DEEPLAB_YAMLS, ids=[os.path.basename(p) for p in DEEPLAB_YAMLS])
def test_reference_file_loads_to_the_originals_values(path):
    cfg = load_deeplab_config(path)
    raw = flat(yaml.safe_load(open(path)))
    # every value of the file is in the loaded config
    for key, v in raw.items():
        got = _get(cfg, key)
        if key == 'SCALES':
            assert get_scales(cfg) == [tuple(v)]
        else:
            _same(got, v, key)
    # every other key of the original's config.py has the original's default
    for key, v in flat(ORIGINAL).items():
        if key in raw:
            continue
        if key == 'SCALES':
            assert get_scales(cfg) == [tuple(p) for p in v]
        else:
            _same(_get(cfg, key), v, key)
    assert cfg.config_name == os.path.splitext(os.path.basename(path))[0]


def test_crop_keys_of_the_published_files():
    by_name = {os.path.basename(p): load_deeplab_config(p) for p in DEEPLAB_YAMLS}
    city = by_name['deeplab_resnet_v1_101_cityscapes_segmentation_dcn.yaml']
    voc = by_name['deeplab_resnet_v1_101_voc12_segmentation_base.yaml']
    assert city.TRAIN.ENABLE_CROP is True
    assert (city.TRAIN.CROP_HEIGHT, city.TRAIN.CROP_WIDTH) == (768, 1024)
    assert voc.TRAIN.ENABLE_CROP is False and get_scales(voc) == [(360, 600)]
    assert city.symbol == 'resnet_v1_101_deeplab_dcn' and city.dataset.NUM_CLASSES == 19
    assert voc.dataset.dataset == 'PascalVOC' and voc.dataset.image_set == '2012_train_seg'


def test_defaults_are_extended_not_changed(tmp_path):
    before = json.dumps(DEFAULTS, sort_keys=True)
    merged = add_deeplab_config(DEFAULTS)
    assert json.dumps(DEFAULTS, sort_keys=True) == before
    assert merged['TRAIN']['ENABLE_CROP'] is False and 'ENABLE_CROP' not in DEFAULTS['TRAIN']
    # the detection keys stay accepted
    assert merged['TRAIN']['RPN_BATCH_SIZE'] == DEFAULTS['TRAIN']['RPN_BATCH_SIZE']
    cfg = deeplab_default_config()
    assert cfg.TRAIN.CROP_HEIGHT == 768 and cfg.network.FIXED_PARAMS == \
        DEEPLAB_DEFAULTS['network']['FIXED_PARAMS']
    # DeepLab's keys are unknown to the detection schema, and typed in DeepLab's
    p = tmp_path / 'x.yaml'
    p.write_text('TRAIN:\n  ENABLE_CROP: true\n')
    with pytest.raises(ValueError, match='TRAIN.ENABLE_CROP'):
        load_config(str(p))
    assert load_deeplab_config(str(p)).TRAIN.ENABLE_CROP is True
    p.write_text('TRAIN:\n  CROP_HEIGHT: tall\n')
    with pytest.raises(ValueError, match='TRAIN.CROP_HEIGHT'):
        load_deeplab_config(str(p))
    cfg2 = update_config(cfg, {'TRAIN': {'CROP_WIDTH': 512}})
    assert cfg2.TRAIN.CROP_WIDTH == 512
    with pytest.raises(ValueError, match='a section here'):
        add_deeplab_config({'TRAIN': 3})
