"""Segmentation datasets (Shapes labels, Cityscapes, VOC segmentation) and batches."""
import hashlib
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from dcn import seg_data
from dcn.config import default_config
from dcn.dataset import SHAPES_CLASSES, get_imdb
from dcn.dataset import shapes as shapes_mod
from dcn.dataset.segmentation import load_gt_segdb, read_label

from _util import shapes_config

HERE = os.path.dirname(os.path.abspath(__file__))


def _sha1_file(p):
    with open(p, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('seg_shapes'))
    for s in ('minitrain', 'minitest'):
        shapes_mod.generate_shapes(os.path.join(root, 'shapes'), s)
    return root


def test_detection_side_unchanged_from_generator_version_1(shapes_root):
    """Images and annotations are byte for byte those of generator version 1 (digests taken
    before the labels were added)."""
    with open(os.path.join(HERE, 'data', 'shapes_v1_digests.json')) as f:
        ref = json.load(f)
    assert ref['generator_version'] == 1 and shapes_mod.GENERATOR_VERSION == 2
    ds = os.path.join(shapes_root, 'shapes')
    for index, (jpg, xml) in ref['files'].items():
        assert _sha1_file(os.path.join(ds, 'JPEGImages', index + '.jpg')) == jpg, index
        assert _sha1_file(os.path.join(ds, 'Annotations', index + '.xml')) == xml, index
    for name in ('train', 'test'):
        rng = np.random.RandomState(shapes_mod.IMAGE_SETS[name][1])
        for k in range(20):
            im, boxes, names = shapes_mod.render_image(rng)
            h = hashlib.sha1(im.tobytes() + np.asarray(boxes, np.float64).tobytes() +
                             ','.join(names).encode()).hexdigest()
            assert h == ref['render']['%s_%05d' % (name, k)], (name, k)


def test_labels_agree_with_boxes_and_image(shapes_root):
    imdb = get_imdb('Shapes', 'minitrain', shapes_root, os.path.join(shapes_root, 'shapes'))
    roidb = imdb.gt_roidb()
    segdb = imdb.gt_segdb()
    assert [r['image'] for r in roidb] == [s['image'] for s in segdb]
    seen = set()
    for r, s in zip(roidb, segdb):
        lab = read_label(s['seg_cls_path'])
        assert lab.shape == (r['height'], r['width']) == (s['height'], s['width'])
        assert set(np.unique(lab)) <= set(range(len(SHAPES_CLASSES)))   # no 255
        assert (lab == 0).any()
        for c in np.unique(lab):
            if c == 0:
                continue
            seen.add(int(c))
            inside = np.zeros(lab.shape, bool)
            for b, gc in zip(r['boxes'], r['gt_classes']):
                if gc == c:
                    inside[int(b[1]):int(b[3]) + 1, int(b[0]):int(b[2]) + 1] = True
            assert inside.any(), 'class %d labelled but has no box' % c
            assert not ((lab == c) & ~inside).any(), 'class %d pixels outside its boxes' % c
        for b, gc in zip(r['boxes'], r['gt_classes']):
            win = lab[int(b[1]):int(b[3]) + 1, int(b[0]):int(b[2]) + 1]
            # a box's shape is at most partly covered by later shapes
            assert (win == gc).mean() > 0.2
    assert seen == {1, 2, 3, 4, 5}


def test_labels_draw_no_random_numbers():
    a, b = np.random.RandomState(7), np.random.RandomState(7)
    for _ in range(5):
        im, boxes, names, labels = shapes_mod.render_image_and_labels(a)
        im2, boxes2, names2 = shapes_mod.render_image(b)
        assert (im == im2).all() and (boxes == boxes2).all() and names == names2
        assert labels.shape == im.shape[:2] and labels.dtype == np.uint8
    assert a.randint(1 << 30) == b.randint(1 << 30)


def test_version_1_dataset_is_upgraded(tmp_path):
    ds = str(tmp_path / 'shapes')
    shapes_mod.generate_shapes(ds, 'minitest')
    before = {f: _sha1_file(os.path.join(ds, 'JPEGImages', f))
              for f in os.listdir(os.path.join(ds, 'JPEGImages'))}
    # make it look like a version-1 dataset
    shutil.rmtree(os.path.join(ds, 'SegmentationClass'))
    shutil.rmtree(os.path.join(ds, 'ImageSets', 'Segmentation'))
    with open(os.path.join(ds, shapes_mod.MARKER), 'w') as f:
        f.write('Shapes synthetic detection dataset, generator version 1\n')
    imdb = get_imdb('Shapes', 'minitest', str(tmp_path), ds)
    assert len(imdb.gt_segdb()) == 8
    assert os.path.isfile(os.path.join(ds, 'ImageSets', 'Segmentation', 'minitest.txt'))
    assert 'version 2' in open(os.path.join(ds, shapes_mod.MARKER)).read()
    after = {f: _sha1_file(os.path.join(ds, 'JPEGImages', f))
             for f in os.listdir(os.path.join(ds, 'JPEGImages'))}
    assert after == before


def test_perfect_prediction_and_flip(shapes_root):
    cfg = shapes_config(shapes_root)
    imdbs, segdb = load_gt_segdb(cfg, 'minitest', flip=True)
    assert len(segdb) == 16 and [s['flipped'] for s in segdb] == [False] * 8 + [True] * 8
    assert segdb[8]['image'] == segdb[0]['image']
    imdb = imdbs[0]
    preds = [read_label(s['seg_cls_path']) for s in segdb[:8]]
    res = imdb.evaluate_segmentations(preds)
    assert res['mIoU'] == 1.0 and res['pixel_accuracy'] == 1.0
    out = os.path.join(imdb.segmentation_results_dir(), imdb.image_set_index[0] + '.png')
    assert (np.array(Image.open(out)) == preds[0]).all()
    # one class predicted as background everywhere costs that class's IoU
    bad = [np.where(p == 3, 0, p) for p in preds]
    res = imdb.evaluate_segmentations(bad, write=False)
    assert res['IoU/triangle'] == 0.0 and 0.6 < res['mIoU'] < 1.0
    cfg.dataset.NUM_CLASSES = 21
    with pytest.raises(ValueError, match='NUM_CLASSES'):
        load_gt_segdb(cfg, 'minitest')


def _write_png(path, arr, palette=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = Image.fromarray(arr)
    if palette is not None:
        im = im.convert('P') if im.mode != 'P' else im
        im.putpalette(palette)
    im.save(path)


def _random_image(rng, h, w):
    return rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)


def test_cityscapes_layout_segdb_and_metric(tmp_path):
    rng = np.random.RandomState(0)
    ds = tmp_path / 'cityscapes'
    names = ['aachen_000001_000019', 'aachen_000000_000019', 'bremen_000003_000019']
    gts = {}
    for n in names:
        city = n.split('_')[0]
        (ds / 'leftImg8bit' / 'train' / city).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(ds / 'leftImg8bit' / 'train' / city / (n + '_leftImg8bit.png')),
                    _random_image(rng, 32, 64))
        lab = rng.randint(0, 19, size=(32, 64)).astype(np.uint8)
        lab[:4] = 255
        gts[n] = lab
        _write_png(str(ds / 'gtFine' / 'train' / city / (n + '_gtFine_labelTrainIds.png')), lab)
    # flipped copies of the original's loader are not images of the set
    cv2.imwrite(str(ds / 'leftImg8bit' / 'train' / 'aachen' / 'aachen_000000_000019_flip.png'),
                _random_image(rng, 32, 64))
    imdb = get_imdb('CityScape', 'leftImg8bit_train', str(tmp_path), str(ds))
    assert imdb.num_classes == 19 and imdb.image_set_index == sorted(names)
    segdb = imdb.gt_segdb()
    assert segdb[0]['seg_cls_path'].endswith(
        os.path.join('gtFine', 'train', 'aachen', 'aachen_000000_000019_gtFine_labelTrainIds.png'))
    assert (segdb[0]['height'], segdb[0]['width']) == (32, 64)
    # predictions at half resolution are resized (nearest) to the 32x64 ground truth
    preds = [gts[n][::2, ::2].copy() for n in imdb.image_set_index]
    for p in preds:
        p[p == 255] = 0
    res = imdb.evaluate_segmentations(preds)
    full = [cv2.resize(p.astype(np.float32), (64, 32), interpolation=cv2.INTER_NEAREST)
            for p in preds]
    cm = np.zeros((19, 19))
    for n, f in zip(imdb.image_set_index, full):
        keep = gts[n] != 255
        np.add.at(cm, (gts[n][keep].astype(int), f[keep].astype(int)), 1)
    assert (res['confusion_matrix'] == cm).all() and cm.sum() == 3 * 28 * 64
    with pytest.raises(FileNotFoundError, match='leftImg8bit'):
        get_imdb('cityscapes', 'leftImg8bit_val', str(tmp_path), str(ds))
    with pytest.raises(NotImplementedError, match='segmentation'):
        imdb.gt_roidb()


def test_voc_segmentation_lists_and_palette_labels(tmp_path):
    rng = np.random.RandomState(1)
    voc = tmp_path / 'VOCdevkit2012' / 'VOC2012'
    (voc / 'JPEGImages').mkdir(parents=True)
    (voc / 'ImageSets' / 'Main').mkdir(parents=True)
    labels = {}
    from dcn.dataset.segmentation import voc_palette
    for i in ('2007_000032', '2008_000123'):
        cv2.imwrite(str(voc / 'JPEGImages' / (i + '.jpg')), _random_image(rng, 375, 500))
        lab = rng.randint(0, 21, size=(375, 500)).astype(np.uint8)
        lab[100:110] = 255
        labels[i] = lab
        _write_png(str(voc / 'SegmentationClass' / (i + '.png')), lab, voc_palette())
    (voc / 'ImageSets' / 'Main' / 'train_seg.txt').write_text('2007_000032\n2008_000123\n')
    imdb = get_imdb('PascalVOC', '2012_train_seg', str(tmp_path), str(tmp_path / 'VOCdevkit2012'))
    segdb = imdb.gt_segdb()
    assert len(segdb) == 2
    assert segdb[1]['seg_cls_path'].endswith(os.path.join('SegmentationClass', '2008_000123.png'))
    # palette PNGs read as class indices, not colours
    assert (read_label(segdb[0]['seg_cls_path']) == labels['2007_000032']).all()
    # VOC scores at the prediction's size: gt resized (nearest) to the 360x480 prediction
    cfg = default_config()
    cfg.SCALES = [360, 600]
    data, lab, info = seg_data.get_segmentation_image(segdb[0], cfg)
    assert data.shape == (1, 3, 360, 480) and lab.shape == (1, 1, 360, 480)
    np.testing.assert_allclose(info, [360, 480, 360 / 375.0])
    pred = lab[0, 0].copy()
    pred[pred == 255] = 0
    res = imdb.evaluate_segmentations([pred, pred], write=False)
    assert res['num_images'] == 2
    assert res['confusion_matrix'].sum() == 2 * (lab != 255).sum()


def test_segmentation_batch_resize_means_flip_crop(tmp_path):
    rng = np.random.RandomState(3)
    im = _random_image(rng, 40, 60)
    lab = rng.randint(0, 5, size=(40, 60)).astype(np.uint8)
    lab[:, :7] = 255
    cv2.imwrite(str(tmp_path / 'a.png'), im)
    _write_png(str(tmp_path / 'a_label.png'), lab)
    rec = {'image': str(tmp_path / 'a.png'), 'seg_cls_path': str(tmp_path / 'a_label.png'),
           'height': 40, 'width': 60, 'flipped': False}
    cfg = default_config()
    cfg.SCALES = [20, 100]
    data, label, info = seg_data.get_segmentation_image(rec, cfg)
    assert data.shape == (1, 3, 20, 30) and label.shape == (1, 1, 20, 30)
    np.testing.assert_allclose(info, [20, 30, 0.5])
    small = cv2.resize(im, None, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_LINEAR)
    means = np.array([103.06, 115.90, 123.15], np.float32)   # B, G, R
    np.testing.assert_allclose(data[0, 0], small[:, :, 2] - means[2], atol=1e-4)   # R first
    np.testing.assert_allclose(data[0, 2], small[:, :, 0] - means[0], atol=1e-4)
    assert (label[0, 0] == cv2.resize(lab, None, None, fx=0.5, fy=0.5,
                                      interpolation=cv2.INTER_NEAREST)).all()
    # flipped: mirror the files, then resize (the original flips the files on disk)
    fdata, flabel, _ = seg_data.get_segmentation_image(dict(rec, flipped=True), cfg)
    small_f = cv2.resize(np.ascontiguousarray(im[:, ::-1]), None, None, fx=0.5, fy=0.5,
                         interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(fdata[0, 1], small_f[:, :, 1] - means[1], atol=1e-4)
    assert (flabel[0, 0] == cv2.resize(np.ascontiguousarray(lab[:, ::-1]), None, None, fx=0.5,
                                       fy=0.5, interpolation=cv2.INTER_NEAREST)).all()
    assert (flabel[0, 0][:, -3:] == 255).all()
    # random crop at the original's offsets: sx = floor(u * (W - cw + 1)), then sy
    cfg.TRAIN.ENABLE_CROP = True
    cfg.TRAIN.CROP_HEIGHT, cfg.TRAIN.CROP_WIDTH = 12, 17
    d, l = seg_data.get_segmentation_train_batch([rec], cfg, np.random.RandomState(5))
    u = np.random.RandomState(5)
    u.randint(1)                                   # the scale draw
    sx = int(np.floor(u.random_sample() * (30 - 17 + 1)))
    sy = int(np.floor(u.random_sample() * (20 - 12 + 1)))
    assert d['data'].shape == (1, 3, 12, 17) and l['label'].shape == (1, 1, 12, 17)
    np.testing.assert_array_equal(d['data'], data[:, :, sy:sy + 12, sx:sx + 17])
    np.testing.assert_array_equal(l['label'], label[:, :, sy:sy + 12, sx:sx + 17])
    np.testing.assert_allclose(d['im_info'], [[20, 30, 0.5]])
    offsets = set()
    for seed in range(40):
        d, _ = seg_data.get_segmentation_train_batch([rec], cfg, np.random.RandomState(seed))
        offsets.add(float(d['data'][0, 0, 0, 0]))
    assert len(offsets) > 10
    cfg.TRAIN.CROP_HEIGHT = 21
    with pytest.raises(ValueError, match='smaller than the crop'):
        seg_data.get_segmentation_train_batch([rec], cfg, np.random.RandomState(0))
    cfg.TRAIN.ENABLE_CROP = False
    d, l = seg_data.get_segmentation_train_batch([rec], cfg, np.random.RandomState(0))
    assert d['data'].shape == (1, 3, 20, 30)
    with pytest.raises(ValueError, match='one image per device'):
        seg_data.get_segmentation_train_batch([rec, rec], cfg, np.random.RandomState(0))
    tdata, tlabel, tinfo = seg_data.get_segmentation_test_batch([rec, dict(rec, flipped=True)], cfg)
    assert len(tdata) == 2 and tdata[0]['data'].shape == (1, 3, 20, 30)
    np.testing.assert_array_equal(tdata[1]['data'], fdata)


def test_bad_label_files(tmp_path):
    cv2.imwrite(str(tmp_path / 'rgb.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='mode'):
        read_label(str(tmp_path / 'rgb.png'))
    with pytest.raises(FileNotFoundError, match='label image not found'):
        read_label(str(tmp_path / 'none.png'))
    (tmp_path / 'junk.png').write_bytes(b'not a png')
    with pytest.raises(IOError, match='cannot decode'):
        read_label(str(tmp_path / 'junk.png'))
