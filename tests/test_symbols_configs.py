"""Experiment configs and launch scripts: reference settings kept verbatim, Shapes settings
consistent with the dataset and the networks."""
import glob
import importlib
import os
import re

import pytest
import yaml

from dcn.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(os.path.dirname(ROOT), 'shared', 'reference-configs')
if not os.path.isdir(REF):
    REF = '/work/shared/reference-configs'
# the families built here
REF_FILES = sorted(glob.glob(os.path.join(REF, 'rfcn', '*.yaml')) +
                   glob.glob(os.path.join(REF, 'faster_rcnn', '*.yaml')) +
                   glob.glob(os.path.join(REF, 'fpn', '*.yaml')) +
                   glob.glob(os.path.join(REF, 'deeplab', '*.yaml')))


def _family(path):
    """The family package of an experiments/<family>/cfgs file, imported (it registers
    its config keys, as the command-line mains do)."""
    family = os.path.basename(os.path.dirname(os.path.dirname(path)))
    importlib.import_module(family)
    return family


def load_experiment(path):
    """Load ``experiments/<family>/cfgs/<file>`` as the family's entry points do."""
    from dcn.tools.main import load_family_config
    family = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    return load_family_config(family, path)


def _rel(path):
    return os.path.relpath(path, REF)


@pytest.mark.skipif(not REF_FILES, reason='reference configs not available')
@pytest.mark.parametrize('ref', REF_FILES, ids=_rel)
def test_reference_configs_kept_verbatim(ref):
    family, name = os.path.split(_rel(ref))
    ours = os.path.join(ROOT, 'experiments', family, 'cfgs', name)
    assert os.path.isfile(ours), ours
    with open(ref) as f:
        want = yaml.safe_load(f)
    with open(ours) as f:
        got = yaml.safe_load(f)
    assert got == want
    load_experiment(ours)   # every key is known to the loader


SHAPES = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*', 'cfgs', 'shapes*.yaml')))


def test_shapes_configs_present():
    names = {os.path.relpath(p, os.path.join(ROOT, 'experiments')) for p in SHAPES}
    assert names == {'rfcn/cfgs/shapes_rfcn_dcn.yaml', 'rfcn/cfgs/shapes_rfcn.yaml',
                     'rfcn/cfgs/shapes_mini_rfcn_dcn.yaml',
                     'faster_rcnn/cfgs/shapes_rcnn_dcn.yaml', 'faster_rcnn/cfgs/shapes_rcnn.yaml',
                     'faster_rcnn/cfgs/shapes_mini_rcnn_dcn.yaml',
                     'fpn/cfgs/shapes_fpn.yaml', 'fpn/cfgs/shapes_fpn_dcn.yaml',
                     'fpn/cfgs/shapes_mini_fpn.yaml',
                     # proposal pipelines: RPN alone, heads from proposals, alternate training
                     'rfcn/cfgs/shapes_mini_rfcn_rpn.yaml',
                     'rfcn/cfgs/shapes_mini_rfcn_proposals.yaml',
                     'faster_rcnn/cfgs/shapes_mini_rcnn_proposals.yaml',
                     'rfcn/cfgs/shapes_mini_rfcn_alternate.yaml',
                     'deeplab/cfgs/shapes_deeplab.yaml', 'deeplab/cfgs/shapes_deeplab_dcn.yaml',
                     'deeplab/cfgs/shapes_mini_deeplab.yaml'}


SEG_SHAPES = [p for p in SHAPES if '/deeplab/' in p]


def _check_shapes_common(cfg, path):
    """What every Shapes experiment file shares: the data set, CPU, training from scratch, the
    image sets of its size; returns whether it is a mini file."""
    from dcn.dataset import shapes
    assert cfg.dataset.dataset == 'Shapes'
    assert cfg.dataset.NUM_CLASSES == shapes.NUM_CLASSES
    assert cfg.gpus == '' and cfg.network.pretrained == ''
    assert cfg.network.FIXED_PARAMS == []
    mini = '_mini_' in os.path.basename(path)
    assert (cfg.dataset.image_set, cfg.dataset.test_image_set) == (
        ('minitrain', 'minitest') if mini else ('train', 'test'))
    return mini


@pytest.mark.parametrize('path', SEG_SHAPES, ids=os.path.basename)
def test_shapes_segmentation_configs_consistent(path):
    cfg = load_experiment(path)
    mini = _check_shapes_common(cfg, path)
    assert cfg.TEST.test_epoch == cfg.TRAIN.end_epoch
    steps = [float(s) for s in cfg.TRAIN.lr_step.split(',')]
    assert all(0 < s <= cfg.TRAIN.end_epoch for s in steps)
    module = importlib.import_module('deeplab.symbols.%s' % cfg.symbol)
    assert hasattr(module, cfg.symbol)
    assert cfg.symbol.startswith('resnet_v1_18_deeplab')
    assert cfg.symbol.endswith('_dcn') == os.path.basename(path).endswith('_dcn.yaml')
    # the DeepLab defaults are in effect (keys the detection defaults lack)
    assert cfg.TRAIN.ENABLE_CROP is (not mini)


@pytest.mark.parametrize('path', [p for p in SHAPES if p not in SEG_SHAPES],
                         ids=os.path.basename)
def test_shapes_configs_consistent(path):
    from dcn.dataset import shapes
    pkg = _family(path)
    cfg = load_config(path)
    mini = _check_shapes_common(cfg, path)
    if cfg.TRAIN.ALTERNATE.rpn1_epoch:  # alternate training tests the combined epoch 0
        assert cfg.TEST.test_epoch == 0
    else:
        assert cfg.TEST.test_epoch == cfg.TRAIN.end_epoch
    steps = [float(s) for s in cfg.TRAIN.lr_step.split(',')]
    assert all(0 < s <= cfg.TRAIN.end_epoch for s in steps)
    # anchors cover the object sizes of the data set (side 28..120 px at scale ~1)
    strides = cfg.network.RPN_FEAT_STRIDE
    strides = strides if isinstance(strides, list) else [strides]
    sizes = [st * s for st in strides for s in cfg.network.ANCHOR_SCALES]
    assert min(sizes) <= shapes.OBJECT_SIZE_RANGE[0] * 1.5
    assert max(sizes) >= shapes.OBJECT_SIZE_RANGE[1]
    module = importlib.import_module('%s.symbols.%s' % (pkg, cfg.symbol))
    assert hasattr(module, cfg.symbol)
    assert cfg.CLASS_AGNOSTIC == (pkg == 'rfcn')
    # R-FCN with OHEM over every proposal (the original's R-FCN files); Faster R-CNN with the
    # original's 128 sampled RoIs per image (no OHEM); FPN also sampled on Shapes (from scratch
    # its 2fc head does not learn under OHEM, experiments/fpn/shapes_fpn_base.yaml); the mini
    # files keep the OHEM of shapes_base.yaml but for Faster R-CNN's (sampled-RoI losses)
    if mini:
        assert cfg.TRAIN.ENABLE_OHEM == (pkg != 'faster_rcnn')
    else:
        assert cfg.TRAIN.ENABLE_OHEM == (pkg == 'rfcn')
        if pkg != 'rfcn':
            assert cfg.TRAIN.BATCH_ROIS == 128 and cfg.TRAIN.FG_FRACTION == 0.25
    assert (cfg.TRAIN.BATCH_ROIS == -1) == cfg.TRAIN.ENABLE_OHEM


SCRIPTS = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*', '*.sh')))


@pytest.mark.parametrize('script', SCRIPTS, ids=os.path.basename)
def test_scripts_point_at_existing_configs(script):
    with open(script) as f:
        text = f.read()
    assert 'set -e' in text
    m = re.search(r'--cfg (\S+\.yaml)', text)
    assert m, script
    assert os.path.isfile(os.path.join(ROOT, m.group(1))), m.group(1)
    entry = re.search(r'(experiments/\S+\.py)', text).group(1)
    assert entry in ('experiments/rfcn/rfcn_end2end_train_test.py',
                     'experiments/faster_rcnn/rcnn_end2end_train_test.py',
                     'experiments/fpn/fpn_end2end_train_test.py',
                     'experiments/deeplab/deeplab_train_test.py')
    # the entry point of the script's own family folder
    assert entry.split('/')[1] == m.group(1).split('/')[1]
    assert os.access(script, os.X_OK)


def test_one_script_per_published_experiment():
    names = {os.path.basename(s) for s in SCRIPTS}
    for n in ('rfcn_dcn_coco', 'rfcn_coco', 'rfcn_dcn_voc', 'rfcn_voc', 'rcnn_dcn_coco',
              'rcnn_coco', 'rcnn_dcn_voc', 'rcnn_voc', 'shapes_rfcn_dcn', 'shapes_rcnn_dcn',
              'fpn_coco', 'fpn_dcn_coco', 'shapes_fpn', 'shapes_fpn_dcn',
              'deeplab_cityscapes', 'deeplab_dcn_cityscapes', 'deeplab_voc', 'deeplab_dcn_voc',
              'shapes_deeplab', 'shapes_deeplab_dcn'):
        assert n + '.sh' in names
