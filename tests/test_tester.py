"""im_detect decoding and pred_eval post-processing with a stand-in predictor."""
import os
import pickle

import mxnet as mx
import numpy as np

from dcn.config import default_config, update_config
from dcn.tester import im_detect, pred_eval


class FakePredictor(object):
    def __init__(self, outputs):
        self.outputs = outputs

    def predict(self, batch):
        return self.outputs


def _batch(im_info, index, pad=0):
    n = im_info.shape[0]
    return mx.io.DataBatch(data=[mx.nd.zeros((n, 3, 8, 8)), mx.nd.array(im_info)], label=None,
                           pad=pad, index=np.array(index),
                           provide_data=[('data', (n, 3, 8, 8)), ('im_info', (n, 3))])


def test_im_detect_decodes_clips_and_rescales():
    rois = np.array([[0, 10, 10, 29, 49], [0, 0, 0, 99, 99]], np.float32)
    deltas = np.zeros((1, 2, 8), np.float32)
    deltas[0, 0, 4:8] = [0.1, -0.2, np.log(2.0), 0.0]
    deltas[0, 1, 4:8] = [0.0, 0.0, np.log(3.0), 0.0]
    scores = np.array([[[0.2, 0.8], [0.6, 0.4]]], np.float32)
    pred = FakePredictor({'rois_output': rois, 'cls_prob_reshape_output': scores,
                          'bbox_pred_reshape_output': deltas})
    im_info = np.array([[120, 160, 2.0]], np.float32)
    s, b, _ = im_detect(pred, _batch(im_info, [0]), ['data', 'im_info'], [2.0], default_config())
    np.testing.assert_array_equal(s[0], scores[0])
    # roi 0: w=20, h=40, ctr (19.5, 29.5) -> ctr (21.5, 21.5), w 40, h 40
    np.testing.assert_allclose(b[0][0, 4:8], np.array([2.0, 2.0, 41.0, 41.0]) / 2.0, atol=1e-4)
    # roi 1: w 300 around x ctr 49.5 -> clipped to [0, 159]
    np.testing.assert_allclose(b[0][1, 4:8], np.array([0, 0, 159, 99]) / 2.0, atol=1e-4)


class FakeIMDB(object):
    name = 'fake'
    classes = ['__background__', 'a', 'b']
    num_classes = 3
    num_images = 2

    def __init__(self, result_path):
        self.result_path = result_path
        self.received = None

    def evaluate_detections(self, all_boxes):
        self.received = all_boxes
        return {'mAP': 0.5}


def test_pred_eval_nms_cap_and_cache(tmp_path):
    cfg = update_config(default_config(), {'CLASS_AGNOSTIC': False,
                                           'TEST': {'NMS': 0.3, 'max_per_image': 3}})
    # 4 rois: two near-duplicates, two separate boxes; zero deltas keep the rois
    rois = np.array([[i, *b] for i in range(2) for b in
                     ([0, 0, 20, 20], [1, 1, 21, 21], [40, 40, 60, 60], [70, 0, 90, 20])],
                    np.float32)
    scores = np.array([[0.1, 0.9, 0.05], [0.1, 0.8, 0.3], [0.2, 0.7, 0.6], [0.5, 0.0005, 0.5]],
                      np.float32)
    pred = FakePredictor({'rois_output': rois,
                          'cls_prob_reshape_output': np.stack([scores, scores]),
                          'bbox_pred_reshape_output': np.zeros((2, 4, 12), np.float32)})

    class Data(object):
        provide_data = [('data', (2, 3, 8, 8)), ('im_info', (2, 3))]

        def __iter__(self):
            return iter([_batch(np.array([[100, 100, 1.0]] * 2, np.float32), [0, 1])])
    imdb = FakeIMDB(str(tmp_path))
    res = pred_eval(pred, Data(), imdb, cfg, thresh=1e-3)
    assert res == {'mAP': 0.5}
    boxes = imdb.received
    for img in range(2):
        a = boxes[1][img]
        # class a: roi1 suppressed by roi0 (IoU > 0.3), roi3 under threshold
        np.testing.assert_allclose(a[:, 4], [0.9, 0.7])
        total = sum(len(boxes[j][img]) for j in (1, 2))
        assert total == 3  # max_per_image keeps the 3 best: 0.9, 0.7, 0.6
        np.testing.assert_allclose(boxes[2][img][:, 4], [0.6])
    cache = os.path.join(str(tmp_path), 'fake_detections.pkl')
    with open(cache, 'rb') as f:
        cached = pickle.load(f)
    np.testing.assert_array_equal(cached[1][0], boxes[1][0])
    imdb2 = FakeIMDB(str(tmp_path))
    pred_eval(None, Data(), imdb2, cfg, ignore_cache=False)  # served from the cache
    np.testing.assert_array_equal(imdb2.received[2][1], boxes[2][1])
    # another model (or other test settings): detected again, never the stale cache
    flat = np.full_like(scores, 0.25)
    pred2 = FakePredictor({'rois_output': rois,
                           'cls_prob_reshape_output': np.stack([flat, flat]),
                           'bbox_pred_reshape_output': np.zeros((2, 4, 12), np.float32)})
    for model, test_cfg in (({'params': '/m/e2e-0002.params'}, cfg),
                            (None, update_config(cfg, {'TEST': {'NMS': 0.5}}))):
        imdb3 = FakeIMDB(str(tmp_path))
        pred_eval(pred2, Data(), imdb3, test_cfg, ignore_cache=False, model=model)
        assert np.all(imdb3.received[1][0][:, 4] == 0.25)
    # a detections file without its key file is not trusted
    os.remove(cache[:-len('.pkl')] + '.key.json')
    imdb4 = FakeIMDB(str(tmp_path))
    pred_eval(pred, Data(), imdb4, cfg, ignore_cache=False)
    np.testing.assert_allclose(imdb4.received[1][0][:, 4], [0.9, 0.7])
