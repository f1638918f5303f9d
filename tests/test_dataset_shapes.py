import os

import cv2
import numpy as np
import pytest

from dcn.dataset import SHAPES_CLASSES, Shapes, filter_roidb, get_imdb, load_gt_roidb
from dcn.dataset.shapes import IMAGE_SETS, generate_shapes
from dcn.vis import save_detections

from _util import shapes_config


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('shapes_root'))


def _perfect(imdb, roidb, jitter=0.0):
    ab = [[np.zeros((0, 5), np.float32) for _ in roidb] for _ in imdb.classes]
    for i, r in enumerate(roidb):
        for b, c in zip(r['boxes'], r['gt_classes']):
            ab[c][i] = np.vstack([ab[c][i], np.r_[b + jitter, 0.9][None]]).astype(np.float32)
    return ab


def test_minitrain_generates_loads_and_evaluates(shapes_root):
    ds = os.path.join(shapes_root, 'shapes')
    imdb = get_imdb('Shapes', 'minitrain', shapes_root, ds)
    assert imdb.num_classes == 6 and imdb.classes == list(SHAPES_CLASSES)
    assert imdb.num_images == IMAGE_SETS['minitrain'][0] == 16
    roidb = imdb.gt_roidb()
    nobj = 0
    for r in roidb:
        im = cv2.imread(r['image'])
        assert im.shape[:2] == (r['height'], r['width'])
        assert 256 <= r['height'] <= 320 and 256 <= r['width'] <= 320
        b = r['boxes']
        assert len(b) >= 1 and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert (b[:, :2] >= 0).all() and (b[:, 2] <= r['width'] - 1).all() and (b[:, 3] <= r['height'] - 1).all()
        assert set(r['gt_classes'].tolist()) <= set(range(1, 6))
        nobj += len(b)
    assert nobj > 16
    m = imdb.evaluate_detections(_perfect(imdb, roidb))
    assert m['mAP@0.5'] == pytest.approx(1.0) and m['mAP@0.7'] == pytest.approx(1.0)
    # boxes shifted by 8 px lose matches at IoU 0.7 for small objects
    m2 = imdb.evaluate_detections(_perfect(imdb, roidb, jitter=8.0))
    assert m2['mAP@0.7'] < m['mAP@0.7']
    assert len(filter_roidb(roidb)) == len(roidb)


def test_generation_is_deterministic(shapes_root, tmp_path):
    generate_shapes(str(tmp_path / 'other'), 'minitest')
    generate_shapes(os.path.join(shapes_root, 'shapes'), 'minitest')
    a = open(os.path.join(str(tmp_path / 'other'), 'Annotations', 'minitest_00003.xml')).read()
    b = open(os.path.join(shapes_root, 'shapes', 'Annotations', 'minitest_00003.xml')).read()
    assert a == b
    # second call reuses the data (no regeneration)
    p = os.path.join(str(tmp_path / 'other'), 'JPEGImages', 'minitest_00000.jpg')
    mt = os.stat(p).st_mtime_ns
    generate_shapes(str(tmp_path / 'other'), 'minitest')
    assert os.stat(p).st_mtime_ns == mt
    assert not [f for f in os.listdir(str(tmp_path / 'other')) if f.startswith('.gen')]


def test_refuses_foreign_directory_and_bad_set(tmp_path):
    d = tmp_path / 'mine'
    d.mkdir()
    (d / 'notes.txt').write_text('user data')
    with pytest.raises(FileExistsError, match='refusing'):
        Shapes('minitest', str(tmp_path), str(d))
    assert (d / 'notes.txt').read_text() == 'user data'
    with pytest.raises(ValueError, match='image_set'):
        Shapes('bigtrain', str(tmp_path), str(tmp_path / 's'))


def test_load_gt_roidb_flip_and_image_error(shapes_root):
    cfg = shapes_config(shapes_root, 'shapes')
    imdbs, roidb = load_gt_roidb(cfg, 'minitrain+minitest', flip=True)
    assert len(roidb) == 2 * (16 + 8)
    r, f = roidb[0], roidb[16]
    assert f['flipped'] and f['image'] == r['image']
    np.testing.assert_array_equal(f['boxes'][:, 0], r['width'] - 1 - r['boxes'][:, 2])


def test_vis_draws_png(shapes_root, tmp_path):
    imdb = Shapes('minitest', shapes_root, os.path.join(shapes_root, 'shapes'))
    r = imdb.gt_roidb()[0]
    im = cv2.imread(r['image'])
    dets = _perfect(imdb, [r])
    out = save_detections(str(tmp_path / 'v' / 'a.png'), im, [d[0] for d in dets], imdb.classes)
    drawn = cv2.imread(out)
    assert drawn.shape == im.shape and (drawn != im).any()
    with pytest.raises(ValueError, match='png'):
        save_detections(str(tmp_path / 'a.jpg'), im, [d[0] for d in dets], imdb.classes)
