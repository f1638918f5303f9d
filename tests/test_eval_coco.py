import json
import os

import cv2
import numpy as np
import pytest

from dcn.dataset import coco, get_imdb


def _make_coco(root, with_ann=True, set_name='val2014'):
    data = os.path.join(root, 'coco')
    os.makedirs(os.path.join(data, 'annotations'), exist_ok=True)
    os.makedirs(os.path.join(data, 'images', set_name), exist_ok=True)
    images = []
    for i, (w, h) in enumerate([(100, 80), (120, 90)]):
        fn = 'COCO_%s_%012d.jpg' % (set_name, i + 1)
        cv2.imwrite(os.path.join(data, 'images', set_name, fn), np.zeros((h, w, 3), np.uint8))
        images.append({'id': i + 1, 'file_name': fn, 'width': w, 'height': h})
    cats = [{'id': 3, 'name': 'car'}, {'id': 1, 'name': 'person'}, {'id': 18, 'name': 'dog'}]
    anns = [  # [x, y, w, h]; one crowd box
        {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [10, 10, 30, 40], 'area': 1200, 'iscrowd': 0},
        {'id': 2, 'image_id': 1, 'category_id': 18, 'bbox': [50, 20, 40, 30], 'area': 1200, 'iscrowd': 0},
        {'id': 3, 'image_id': 2, 'category_id': 3, 'bbox': [5, 5, 100, 60], 'area': 6000, 'iscrowd': 0},
        {'id': 4, 'image_id': 2, 'category_id': 1, 'bbox': [0, 0, 20, 20], 'area': 400, 'iscrowd': 1},
    ]
    d = {'images': images, 'categories': cats}
    if with_ann:
        d['annotations'] = anns
        name = 'instances_%s.json' % set_name
    else:
        name = 'image_info_%s.json' % set_name
    with open(os.path.join(data, 'annotations', name), 'w') as f:
        json.dump(d, f)
    return data, anns


def _gt_boxes_as_dets(imdb, roidb, score=1.0):
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in roidb] for _ in imdb.classes]
    for i, r in enumerate(roidb):
        for b, c in zip(r['boxes'], r['gt_classes']):
            all_boxes[c][i] = np.vstack([all_boxes[c][i], np.r_[b, score][None]]).astype(np.float32)
    return all_boxes


def test_coco_roidb_and_perfect_detections(tmp_path):
    data, _ = _make_coco(str(tmp_path))
    imdb = get_imdb('COCO', 'val2014', str(tmp_path), data, result_path=str(tmp_path / 'res'))
    assert imdb.classes == ['__background__', 'person', 'car', 'dog']   # category id order
    roidb = imdb.gt_roidb()
    assert len(roidb) == 2
    np.testing.assert_array_equal(roidb[0]['boxes'], [[10, 10, 39, 49], [50, 20, 89, 49]])
    assert roidb[0]['gt_classes'].tolist() == [1, 3]
    assert roidb[1]['gt_classes'].tolist() == [2]           # crowd person excluded
    m = imdb.evaluate_detections(_gt_boxes_as_dets(imdb, roidb))
    for k in ('AP', 'AP50', 'AP75'):
        assert m[k] == pytest.approx(1.0)
    res = json.load(open(os.path.join(str(tmp_path / 'res'), 'detections_val2014_results.json')))
    assert {'image_id': 1, 'category_id': 18, 'bbox': [50.0, 20.0, 40.0, 30.0], 'score': 1.0} in res


def test_coco_imperfect_detections_lower_ap(tmp_path):
    data, _ = _make_coco(str(tmp_path))
    imdb = coco('val2014', str(tmp_path), data, result_path=str(tmp_path / 'res'))
    roidb = imdb.gt_roidb()
    ab = _gt_boxes_as_dets(imdb, roidb)
    ab[3][0] = np.zeros((0, 5), np.float32)       # miss the dog: its class AP is 0
    m = imdb.evaluate_detections(ab)
    assert m['AP'] == pytest.approx(2.0 / 3.0)
    assert m['AP/dog'] == pytest.approx(0.0)


def test_coco_test_dev_writes_json_only(tmp_path):
    data, _ = _make_coco(str(tmp_path), with_ann=False, set_name='test2015')
    os.rename(os.path.join(data, 'annotations', 'image_info_test2015.json'),
              os.path.join(data, 'annotations', 'image_info_test-dev2015.json'))
    imdb = coco('test-dev2015', str(tmp_path), data, result_path=str(tmp_path / 'res'))
    assert imdb.num_images == 2 and not imdb.has_annotations
    ab = [[np.array([[1, 1, 10, 10, 0.5]], np.float32)] * 2 for _ in imdb.classes]
    assert imdb.evaluate_detections(ab) == {}
    assert len(json.load(open(imdb.results_file()))) == 2 * 3


def test_coco_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match='annotations'):
        coco('val2014', str(tmp_path), str(tmp_path / 'nope'))
    data, _ = _make_coco(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='instances_train2014.json'):
        coco('train2014', str(tmp_path), data)
    with open(os.path.join(data, 'annotations', 'instances_val2014.json'), 'w') as f:
        f.write('{"images": [')
    with pytest.raises(ValueError, match='instances_val2014.json'):
        coco('val2014', str(tmp_path), data)
