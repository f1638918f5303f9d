"""Demos: detection (R-FCN, Faster R-CNN), deformable convolution sampling points and
deformable PS RoI pooling parts, run as command-line programs on small Shapes checkpoints
(random weights with non-zero offsets), plus the geometry they draw."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dcn.tools import demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RFCN_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')
RCNN_CFG = os.path.join(ROOT, 'experiments', 'faster_rcnn', 'cfgs', 'shapes_mini_rcnn_dcn.yaml')
IMAGES = [os.path.join(ROOT, 'demo', 'shapes_1.jpg'), os.path.join(ROOT, 'demo', 'shapes_2.jpg')]


def _make_checkpoint(package, cfg_file, prefix):
    """Randomly initialised deformable Shapes network with small, non-zero offsets."""
    import mxnet as mx
    from dcn.checkpoint import save_checkpoint
    from dcn.config import load_config
    from dcn.train import get_symbol_instance
    cfg = load_config(cfg_file)
    arg, aux = get_symbol_instance(package, cfg).init_weight(cfg, {}, {})
    rng = np.random.RandomState(7)
    for name in arg:
        if 'offset' in name:
            std = 1e-5 if name.endswith('_weight') else 0.5
            arg[name] = mx.nd.array(rng.normal(0.0, std, arg[name].shape))
    save_checkpoint(prefix, 0, None, arg, aux)
    return prefix


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp('demo_models')
    return {'rfcn': _make_checkpoint('rfcn', RFCN_CFG, str(d / 'rfcn_dcn_shapes')),
            'faster_rcnn': _make_checkpoint('faster_rcnn', RCNN_CFG, str(d / 'rcnn_dcn_shapes'))}


def _run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=240, cwd=ROOT)
    return proc


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]


def _image_sizes():
    return {p: cv2.imread(p).shape[:2] for p in IMAGES}


def _check_png(path, hw):
    assert os.path.isfile(path), path
    im = cv2.imread(path)
    assert im is not None, path
    assert im.shape[:2] == tuple(hw)
    return im


@pytest.mark.parametrize('package,cfg_file', [('rfcn', RFCN_CFG), ('faster_rcnn', RCNN_CFG)])
def test_detection_demo(tmp_path, checkpoints, package, cfg_file):
    out = tmp_path / 'out'
    proc = _run(package + '/demo.py', '--cfg', cfg_file, '--params', checkpoints[package],
                '--epoch', '0', '--images', *IMAGES, '--thresh', '0.05', '--output', str(out))
    _ok(proc)
    with open(out / 'detections.json') as f:
        dets = json.load(f)
    assert sorted(dets) == sorted(IMAGES)
    sizes = _image_sizes()
    names = set(demo.class_names(demo_cfg(cfg_file))[1:])
    assert names == {'ellipse', 'rectangle', 'triangle', 'star', 'cross'}
    total = 0
    for path, (h, w) in sizes.items():
        for d in dets[path]:
            assert d['class'] in names
            assert 0.05 <= d['score'] <= 1.0
            x1, y1, x2, y2 = d['bbox']
            assert 0 <= x1 <= x2 <= w - 1 and 0 <= y1 <= y2 <= h - 1, d
        scores = [d['score'] for d in dets[path]]
        assert scores == sorted(scores, reverse=True)
        total += len(dets[path])
        drawn = _check_png(str(out / (os.path.splitext(os.path.basename(path))[0] + '.png')),
                           (h, w))
        if dets[path]:
            assert np.any(drawn != cv2.imread(path)), 'no detection drawn on %s' % path
    assert total > 0


def demo_cfg(cfg_file):
    from dcn.config import load_config
    return load_config(cfg_file)


def test_deform_conv_demo(tmp_path, checkpoints):
    out = tmp_path / 'conv'
    proc = _run('rfcn/deform_conv_demo.py', '--cfg', RFCN_CFG, '--params', checkpoints['rfcn'],
                '--images', *IMAGES, '--output', str(out))
    _ok(proc)
    # the small network chains res5b_branch2b, res5b_branch2a (regular), res5a_branch2b
    assert 'res5b_branch2b, res5b_branch2a (regular), res5a_branch2b' in proc.stderr
    assert proc.stderr.count('729 sampling points') == 3 * len(IMAGES)
    for path, hw in _image_sizes().items():
        stem = os.path.splitext(os.path.basename(path))[0]
        for k, kind in enumerate(('object', 'background', 'object')):
            drawn = _check_png(str(out / ('%s_unit%d_%s.png' % (stem, k, kind))), hw)
            # red sampling points and the green unit are drawn
            assert np.any(np.all(drawn == (0, 0, 255), axis=2))
            assert np.any(np.all(drawn == (0, 255, 0), axis=2))
    # units given in image pixels: the drawn unit is the cell holding that pixel
    out2 = tmp_path / 'conv_points'
    proc = _run('rfcn/deform_conv_demo.py', '--cfg', RFCN_CFG, '--params', checkpoints['rfcn'],
                '--images', IMAGES[0], '--points', '100,60', '--output', str(out2))
    _ok(proc)
    assert sorted(os.listdir(out2)) == ['shapes_1_unit0.png']
    drawn = cv2.imread(str(out2 / 'shapes_1_unit0.png'))
    ys, xs = np.nonzero(np.all(drawn == (0, 255, 0), axis=2))
    cfg = demo_cfg(RFCN_CFG)
    _, _, scale = demo.prepare_image(cv2.imread(IMAGES[0]), cfg)
    cy, cx = demo.feature_to_image(np.round(demo.image_to_feature([60, 100], scale)), scale)
    assert abs(ys.mean() - cy) < 1.5 and abs(xs.mean() - cx) < 1.5
    assert abs(cx - 100) <= 8 / scale + 0.5 and abs(cy - 60) <= 8 / scale + 0.5


def test_deform_psroi_demo(tmp_path, checkpoints):
    out = tmp_path / 'psroi'
    proc = _run('rfcn/deform_psroi_demo.py', '--cfg', RFCN_CFG, '--params', checkpoints['rfcn'],
                '--images', *IMAGES, '--rois', '40,50,200,210;10,10,120,90', '--parts', '7',
                '--output', str(out))
    _ok(proc)
    for path, hw in _image_sizes().items():
        stem = os.path.splitext(os.path.basename(path))[0]
        for k in range(2):
            drawn = _check_png(str(out / ('%s_roi%d.png' % (stem, k))), hw)
            assert np.any(np.all(drawn == (0, 255, 255), axis=2))  # the RoI
    # RoIs from the network's own detections (the checkpoint has an RPN)
    out2 = tmp_path / 'psroi_det'
    proc = _run('rfcn/deform_psroi_demo.py', '--cfg', RFCN_CFG, '--params', checkpoints['rfcn'],
                '--images', IMAGES[0], '--num_rois', '2', '--output', str(out2))
    _ok(proc)
    assert sorted(os.listdir(out2)) == ['shapes_1_roi0.png', 'shapes_1_roi1.png']


def test_missing_model_message(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'rfcn_dcn_coco')
    for script in ('rfcn/demo.py', 'rfcn/deform_conv_demo.py', 'rfcn/deform_psroi_demo.py',
                   'faster_rcnn/demo.py'):
        proc = _run(script, '--params', missing, '--epoch', '3', '--images', IMAGES[0])
        assert proc.returncode == 1
        assert 'Traceback' not in proc.stderr
        assert 'model file not found: %s-0003.params' % missing in proc.stderr
        assert 'model/' in proc.stderr and '--params' in proc.stderr
    if not os.path.isfile(os.path.join(ROOT, 'model', 'rfcn_dcn_coco-0000.params')):
        proc = _run('rfcn/demo.py')
        assert proc.returncode == 1
        assert 'model/rfcn_dcn_coco-0000.params' in proc.stderr
    if not os.path.isfile(os.path.join(ROOT, 'model', 'rcnn_coco-0000.params')):
        proc = _run('faster_rcnn/demo.py', '--rcnn_only')
        assert proc.returncode == 1
        assert 'model/rcnn_coco-0000.params' in proc.stderr


def test_params_not_fitting_the_network(checkpoints):
    # Faster R-CNN parameters into the R-FCN network: conv_new_1 has another width
    proc = _run('rfcn/demo.py', '--cfg', RFCN_CFG, '--params', checkpoints['faster_rcnn'],
                '--images', IMAGES[0])
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert 'do not fit the network' in proc.stderr
    assert 'conv_new_1_weight' in proc.stderr


def test_detections_for_the_pictures_one_per_object(monkeypatch):
    """The demos draw the best detections, dropping a box that is a better one's object
    detected as another class (IoU >= 0.7)."""
    per_class = [np.zeros((0, 5), np.float32),
                 np.array([[10, 10, 50, 50, 0.9], [100, 100, 140, 150, 0.3]], np.float32),
                 np.array([[11, 10, 50, 51, 0.8], [60, 10, 90, 40, 0.5]], np.float32)]
    monkeypatch.setattr(demo, 'detect', lambda *a: per_class)
    dets = demo._detections(None, None, None, None, 3)
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.5, 0.3])
    assert len(demo._detections(None, None, None, None, 1)) == 1
