import os

import cv2
import numpy as np
import pytest

from dcn.dataset import PascalVOC, get_imdb, load_gt_roidb
from dcn.dataset.voc_eval import voc_ap, voc_eval_class
from dcn.config import default_config


def test_hand_built_ranking_area_and_07():
    # 3 positives in two images; ranked detections: TP, FP, TP, FP(duplicate), miss one gt
    gts = {0: (np.array([[0, 0, 9, 9], [20, 20, 29, 29]]), np.array([False, False])),
           1: (np.array([[0, 0, 9, 9]]), np.array([False]))}
    dets = [(0, 0.9, [0, 0, 9, 9]),        # TP
            (1, 0.8, [50, 50, 60, 60]),    # FP
            (0, 0.7, [20, 20, 29, 29]),    # TP
            (0, 0.6, [0, 0, 9, 9])]        # duplicate -> FP
    rec, prec, ap = voc_eval_class(dets, gts, 0.5, use_07_metric=False)
    np.testing.assert_allclose(rec, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(prec, [1, 1 / 2, 2 / 3, 1 / 2])
    # envelope: precision 1 on recall (0, 1/3], 2/3 on (1/3, 2/3], 0 beyond
    assert ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    # 11-point: recall thresholds 0, .1, .2, .3 -> 1; .4 .. .6 -> 2/3; .7 .. 1 -> 0
    _, _, ap07 = voc_eval_class(dets, gts, 0.5, use_07_metric=True)
    assert ap07 == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)


def test_difficult_ignored_and_threshold():
    gts = {0: (np.array([[0, 0, 9, 9], [30, 30, 39, 39]]), np.array([False, True]))}
    dets = [(0, 0.9, [30, 30, 39, 39]), (0, 0.8, [0, 0, 9, 9])]
    _, _, ap = voc_eval_class(dets, gts, 0.5)
    assert ap == pytest.approx(1.0)
    # IoU of [0,0,9,9] with [0,0,9,13] = 100/140 = 0.714: TP at 0.7, still TP; at 0.75 FP
    dets = [(0, 0.9, [0, 0, 9, 13])]
    assert voc_eval_class(dets, gts, 0.7)[2] == pytest.approx(1.0)
    assert voc_eval_class(dets, gts, 0.75)[2] == pytest.approx(0.0)
    assert np.isnan(voc_eval_class(dets, {}, 0.5)[2])


def test_voc_ap_monotone_envelope():
    assert voc_ap([0.5, 1.0], [0.5, 1.0]) == pytest.approx(1.0)


def _make_voc(root, year='2007', split='test', items=None):
    base = os.path.join(root, 'VOCdevkit', 'VOC' + year)
    for d in ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    names = []
    for name, objs in items:
        cv2.imwrite(os.path.join(base, 'JPEGImages', name + '.jpg'), np.zeros((50, 60, 3), np.uint8))
        xml = ['<annotation><size><width>60</width><height>50</height><depth>3</depth></size>']
        for cls, box, diff in objs:
            xml.append('<object><name>%s</name><difficult>%d</difficult><bndbox><xmin>%d</xmin>'
                       '<ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax></bndbox></object>'
                       % (cls, diff, box[0] + 1, box[1] + 1, box[2] + 1, box[3] + 1))
        xml.append('</annotation>')
        with open(os.path.join(base, 'Annotations', name + '.xml'), 'w') as f:
            f.write(''.join(xml))
        names.append(name)
    with open(os.path.join(base, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n')
    return os.path.join(root, 'VOCdevkit')


def test_pascal_voc_roidb_eval_and_results(tmp_path):
    devkit = _make_voc(str(tmp_path), items=[
        ('000001', [('dog', (5, 5, 30, 40), 0), ('cat', (0, 0, 10, 10), 1)]),
        ('000002', [('person', (10, 10, 59, 49), 0)])])
    imdb = get_imdb('pascalvoc', '2007_test', str(tmp_path), devkit, result_path=str(tmp_path / 'res'))
    assert imdb.use_07_metric and imdb.num_classes == 21 and imdb.name == 'voc_2007_test'
    roidb = imdb.gt_roidb()
    assert len(roidb) == 2
    np.testing.assert_array_equal(roidb[0]['boxes'], [[5, 5, 30, 40]])     # difficult cat left out
    assert roidb[0]['gt_classes'].tolist() == [imdb.classes.index('dog')]
    assert roidb[1]['gt_overlaps'][0, imdb.classes.index('person')] == 1
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in range(2)] for _ in range(21)]
    dog, person = imdb.classes.index('dog'), imdb.classes.index('person')
    all_boxes[dog][0] = np.array([[5, 5, 30, 40, 0.9]], np.float32)
    all_boxes[person][1] = np.array([[10, 10, 40, 49, 0.8]], np.float32)   # IoU 0.62
    m = imdb.evaluate_detections(all_boxes)
    assert m['AP@0.5/dog'] == pytest.approx(1.0) and m['AP@0.7/dog'] == pytest.approx(1.0)
    assert m['AP@0.5/person'] == pytest.approx(1.0) and m['AP@0.7/person'] == 0.0
    assert np.isnan(m['AP@0.5/cat'])                       # only a difficult cat
    assert m['mAP@0.5'] == pytest.approx(1.0) and m['mAP@0.7'] == pytest.approx(0.5)
    txt = open(os.path.join(str(tmp_path / 'res'), 'voc_2007_test', 'comp4_det_test_dog.txt')).read()
    assert txt.split()[:2] == ['000001', '0.900'] and float(txt.split()[2]) == 6.0
    with pytest.raises(ValueError, match='all_boxes'):
        imdb.evaluate_detections(all_boxes[:3])


def test_voc_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match='VOC<year>/Annotations'):
        PascalVOC('2007_test', str(tmp_path), str(tmp_path / 'nope'))
    devkit = _make_voc(str(tmp_path), items=[('a', [('dog', (1, 1, 5, 5), 0)])])
    with pytest.raises(FileNotFoundError, match='trainval.txt'):
        PascalVOC('2007_trainval', str(tmp_path), devkit)
    with pytest.raises(ValueError, match='image_set'):
        PascalVOC('trainval', str(tmp_path), devkit)
    xml = os.path.join(devkit, 'VOC2007', 'Annotations', 'a.xml')
    with open(xml, 'w') as f:
        f.write('<annotation><object>')
    with pytest.raises(ValueError, match='a.xml'):
        PascalVOC('2007_test', str(tmp_path), devkit).gt_roidb()
    with open(xml, 'w') as f:
        f.write('<annotation><size><width>60</width><height>50</height></size><object><name>unicorn'
                '</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>'
                '</object></annotation>')
    with pytest.raises(ValueError, match='unicorn'):
        PascalVOC('2007_test', str(tmp_path), devkit).gt_roidb()
    os.remove(xml)
    with pytest.raises(FileNotFoundError, match='a.xml'):
        PascalVOC('2007_test', str(tmp_path), devkit).gt_roidb()


def test_combined_sets_and_cache_invalidation(tmp_path):
    devkit = _make_voc(str(tmp_path), '2007', 'trainval', [('a', [('dog', (1, 1, 5, 5), 0)])])
    _make_voc(str(tmp_path), '2012', 'trainval', [('b', [('cat', (2, 2, 8, 8), 0)]),
                                                 ('c', [('cat', (3, 3, 9, 9), 0)])])
    cfg = default_config()
    cfg.dataset.root_path = str(tmp_path)
    cfg.dataset.dataset_path = devkit
    imdbs, roidb = load_gt_roidb(cfg, '2007_trainval+2012_trainval', flip=True)
    assert [i.name for i in imdbs] == ['voc_2007_trainval', 'voc_2012_trainval']
    assert len(roidb) == 6 and [r['flipped'] for r in roidb] == [False, True, False, False, True, True]
    np.testing.assert_array_equal(roidb[1]['boxes'], [[60 - 5 - 1, 1, 60 - 1 - 1, 5]])
    assert os.path.isfile(os.path.join(str(tmp_path), 'cache', 'voc_2007_trainval_gt_roidb.pkl'))
    # change an annotation: the cache is rebuilt
    xml = os.path.join(devkit, 'VOC2007', 'Annotations', 'a.xml')
    s = open(xml).read().replace('<xmax>6</xmax>', '<xmax>16</xmax>')
    with open(xml, 'w') as f:
        f.write(s)
    os.utime(xml, ns=(os.stat(xml).st_atime_ns, os.stat(xml).st_mtime_ns + 10 ** 9))
    _, roidb = load_gt_roidb(cfg, '2007_trainval', flip=False)
    np.testing.assert_array_equal(roidb[0]['boxes'], [[1, 1, 15, 5]])
    cfg.dataset.NUM_CLASSES = 6
    with pytest.raises(ValueError, match='NUM_CLASSES'):
        load_gt_roidb(cfg, '2007_trainval', flip=False)


def test_selective_search_proposals_as_the_original(tmp_path):
    """dataset.proposal: selective_search reads <root>/selective_search_data/<name>.mat: 1-based
    (y1, x1, y2, x2) boxes, reordered to 0-based (x1, y1, x2, y2), duplicates and small boxes
    dropped by the original's rules (width >= 2, height > 2)."""
    import scipy.io
    devkit = _make_voc(str(tmp_path), split='trainval', items=[
        ('000001', [('dog', (5, 5, 30, 40), 0)]), ('000002', [('cat', (1, 2, 20, 30), 0)])])
    imdb = get_imdb('pascalvoc', '2007_trainval', str(tmp_path), devkit)
    with pytest.raises(FileNotFoundError, match='selective_search_data'):
        imdb.proposal_roidb('selective_search', imdb.gt_roidb())
    with pytest.raises(ValueError, match='available: .*rpn.*selective_search'):
        imdb.proposal_roidb('edge_boxes', imdb.gt_roidb())
    os.makedirs(str(tmp_path / 'selective_search_data'))
    boxes = np.empty((2,), dtype=object)
    boxes[0] = np.array([[6, 6, 41, 31],       # the dog's box, 1-based y1 x1 y2 x2
                         [6, 6, 41, 31],       # duplicate
                         [1, 1, 3, 10],        # height 2: not > 2, dropped
                         [1, 1, 10, 3]],       # width 2: kept (>= 2)
                        np.float64)
    boxes[1] = np.array([[3, 2, 31, 21]], np.float64)
    scipy.io.savemat(str(tmp_path / 'selective_search_data' / 'voc_2007_trainval.mat'),
                     {'boxes': boxes})
    gt = imdb.gt_roidb()
    roidb = imdb.proposal_roidb('selective_search', gt)
    np.testing.assert_array_equal(roidb[0]['boxes'], [[5, 5, 30, 40], [0, 0, 2, 9]])
    dog = imdb.classes.index('dog')
    assert roidb[0]['max_overlaps'][0] == pytest.approx(1.0) and roidb[0]['max_classes'][0] == dog
    assert (roidb[0]['gt_classes'] == 0).all()
    np.testing.assert_array_equal(roidb[1]['boxes'], [[1, 2, 20, 30]])
    merged = imdb.proposal_roidb('selective_search', gt, append_gt=True)
    assert len(merged[0]['boxes']) == 3 and merged[0]['gt_classes'][0] == dog
    # a file of another image set is refused, naming both counts
    scipy.io.savemat(str(tmp_path / 'selective_search_data' / 'voc_2007_trainval.mat'),
                     {'boxes': boxes[:1]})
    with pytest.raises(ValueError, match='1 images, the image set has 2'):
        imdb.proposal_roidb('selective_search', gt)
