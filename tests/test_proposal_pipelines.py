"""The original's proposal pipelines on the tiny Shapes sets: RPN-only training and testing
(proposal dump, recall), testing from dumped proposals (TEST.HAS_RPN false), training the
RoI head from proposals, alternate training and the combined model."""
import copy
import logging
import os
import pickle
import re

import numpy as np
import pytest

import rfcn  # noqa: F401
from dcn.checkpoint import check_param_shapes, load_param
from dcn.config import load_config
from dcn.dataset import get_imdb
from dcn.train import get_symbol_instance, output_dir

from _util import ROOT, run_script

CFGS = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs')


class _Losses(logging.Handler):
    def __init__(self):
        super(_Losses, self).__init__()
        self.values = {}

    def emit(self, record):
        m = re.match(r'Epoch\[(\d+)\] Train-(\w+)=([-\d.e]+)', record.getMessage())
        if m:
            self.values.setdefault(m.group(2), []).append(float(m.group(3)))


@pytest.fixture()
def losses():
    handler = _Losses()
    log = logging.getLogger('dcn')
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    yield handler.values
    log.removeHandler(handler)
    log.setLevel(level)


def _cfg(name, tmp):
    cfg = load_config(os.path.join(CFGS, name))
    cfg.output_path = str(tmp)
    return cfg


@pytest.fixture(scope='module')
def alternate(tmp_path_factory):
    """The whole alternate training of shapes_mini_rfcn_alternate.yaml."""
    from dcn.engine.proposals import alternate_train
    tmp = tmp_path_factory.mktemp('alternate')
    cfg = _cfg('shapes_mini_rfcn_alternate.yaml', tmp)
    out = output_dir(cfg, cfg.config_name, cfg.dataset.image_set)
    prefix, epoch = alternate_train(cfg, 'rfcn', out)
    return cfg, out, prefix, epoch


def test_rpn_training_proposals_and_recall(tmp_path, losses):
    from dcn.engine.proposals import test_rpn, train_rpn
    cfg = _cfg('shapes_mini_rfcn_rpn.yaml', tmp_path)
    prefix, epoch = train_rpn(cfg, 'rfcn', model_prefix='rpn')
    assert epoch == 2 and os.path.isfile('%s-0002.params' % prefix)
    assert losses['RPNLogLoss'][1] < losses['RPNLogLoss'][0]
    assert 'RCNNAcc' not in losses  # the RPN graph alone
    args, _ = load_param(prefix, epoch)
    assert any(n.startswith('rpn_') for n in args) and not any(
        n.startswith(('rfcn_', 'conv_new_1', 'res5')) for n in args)
    boxes, recall = test_rpn(cfg, 'rfcn', prefix, epoch, result_path=str(tmp_path / 'res'),
                             top_ns=(10, 30, 100))
    path = tmp_path / 'res' / 'rpn_data' / 'shapes_minitest_rpn.pkl'
    with open(path, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 8 and all(d.shape == (100, 5) for d in dumped)
    # boxes in original image coordinates, best first
    imdb = get_imdb('Shapes', 'minitest', cfg.dataset.root_path, cfg.dataset.dataset_path)
    roidb = imdb.gt_roidb()
    for d, rec in zip(dumped, roidb):
        assert d[:, 2].max() <= rec['width'] and d[:, 3].max() <= rec['height']
        assert np.all(np.diff(d[:len(np.unique(d, axis=0)), 4]) <= 0)
    ars = [recall[n]['ar'] for n in (10, 30, 100)]
    r50 = [recall[n]['recalls'][0] for n in (10, 30, 100)]
    for n in (10, 30, 100):
        assert np.all((recall[n]['recalls'] >= 0) & (recall[n]['recalls'] <= 1))
        assert len(recall[n]['thresholds']) == 10
    assert ars[0] <= ars[1] <= ars[2] and r50[0] <= r50[1] <= r50[2] and r50[2] > r50[0]


def test_evaluate_recall_is_the_originals_greedy_matching():
    imdb = get_imdb('Shapes', 'minitest', os.path.join(ROOT, 'data'),
                    os.path.join(ROOT, 'data', 'shapes'))
    roidb = imdb.gt_roidb()
    # each gt box itself: recall 1 at every threshold; a shifted copy: IoU known
    exact = [np.asarray(r['boxes'], np.float32) for r in roidb]
    assert imdb.evaluate_recall(roidb, exact)['ar'] == 1.0
    # one proposal for two gt boxes: it covers at most one of them
    one = [b[:1] for b in exact]
    res = imdb.evaluate_recall(roidb, one)
    num_gt = sum(len(b) for b in exact)
    assert res['recalls'][0] == pytest.approx(len(exact) / float(num_gt))


def test_bbox_normalisation_from_targets_is_the_originals():
    from dcn.bbox.bbox_regression import add_bbox_regression_targets
    cfg = load_config(os.path.join(CFGS, 'shapes_mini_rfcn_proposals.yaml'))
    cfg.CLASS_AGNOSTIC = False
    gt = np.array([[10, 10, 50, 50], [60, 60, 120, 100]], np.float32)
    props = np.array([[12, 8, 52, 49], [9, 11, 47, 55], [58, 62, 121, 104], [0, 0, 5, 5]],
                     np.float32)
    boxes = np.vstack((gt, props))
    from dcn.bbox import bbox_overlaps, bbox_transform
    ov = np.asarray(bbox_overlaps(boxes.astype(np.float64), gt.astype(np.float64)))
    classes = np.array([1, 3])
    overlaps = np.zeros((6, 6), np.float32)
    overlaps[np.arange(6), classes[ov.argmax(1)]] = ov.max(1)
    rec = {'boxes': boxes, 'gt_overlaps': overlaps, 'max_overlaps': overlaps.max(1),
           'max_classes': overlaps.argmax(1), 'gt_classes': np.array([1, 3, 0, 0, 0, 0])}
    means, stds = add_bbox_regression_targets([rec], cfg)
    # the original: per class, mean and std of the targets of the RoIs of overlap >= 0.5
    t = bbox_transform(boxes, gt[ov.argmax(1)])
    for cls in (1, 3):
        rows = (overlaps.argmax(1) == cls) & (overlaps.max(1) >= 0.5)
        np.testing.assert_allclose(means.reshape(6, 4)[cls], t[rows].mean(0), atol=1e-5)
        np.testing.assert_allclose(stds.reshape(6, 4)[cls], t[rows].std(0), atol=1e-5)
        np.testing.assert_allclose(rec['bbox_targets'][rows, 1:],
                                   (t[rows] - t[rows].mean(0)) / t[rows].std(0), atol=1e-3)
    assert np.all(rec['bbox_targets'][5] == 0)  # overlap 0: no target


def test_alternate_training_writes_every_step(alternate):
    cfg, out, prefix, epoch = alternate
    for name in ('rpn1-0001', 'rfcn1-0001', 'rpn2-0001', 'rfcn2-0001', 'final-0000'):
        assert os.path.isfile(os.path.join(out, name + '.params')), name
    for d, sets in (('rpn1', ('minitrain', 'minitest')), ('rpn2', ('minitrain',))):
        for s in sets:
            assert os.path.isfile(os.path.join(out, d, 'rpn_data', 'shapes_%s_rpn.pkl' % s))
    # RPN2 trained with the shared layers of R-FCN1 fixed
    rfcn1, _ = load_param(os.path.join(out, 'rfcn1'), 1)
    rpn2, _ = load_param(os.path.join(out, 'rpn2'), 1)
    shared = [n for n in rpn2 if any(p in n for p in cfg.network.FIXED_PARAMS_SHARED)]
    assert shared
    for n in shared:
        np.testing.assert_array_equal(rpn2[n].asnumpy(), rfcn1[n].asnumpy())
    assert not np.array_equal(rpn2['rpn_cls_score_weight'].asnumpy(),
                              load_param(os.path.join(out, 'rpn1'), 1)[0][
                                  'rpn_cls_score_weight'].asnumpy())
    # the combined model: RPN2's RPN layers and R-FCN2's head, loading into the end-to-end
    # test network with nothing missing or left over
    final, final_aux = load_param(prefix, epoch)
    rfcn2, _ = load_param(os.path.join(out, 'rfcn2'), 1)
    np.testing.assert_array_equal(final['rpn_conv_3x3_weight'].asnumpy(),
                                  rpn2['rpn_conv_3x3_weight'].asnumpy())
    np.testing.assert_array_equal(final['rfcn_cls_weight'].asnumpy(),
                                  rfcn2['rfcn_cls_weight'].asnumpy())
    sym = get_symbol_instance('rfcn', cfg).get_symbol(cfg, is_train=False)
    check_param_shapes(sym, final, final_aux, {'data': (1, 3, 320, 400), 'im_info': (1, 3)},
                       allow_extra=False)


def test_detections_from_dumped_proposals_equal_end_to_end(alternate, tmp_path):
    """The end-to-end network and its RoI head on the proposals its RPN dumped give the same
    detections."""
    from dcn.engine.proposals import test_rpn
    from dcn.tester import test_net
    cfg, out, prefix, epoch = alternate
    e2e_dir, prop_dir = str(tmp_path / 'e2e'), str(tmp_path / 'proposals')
    test_net(cfg, 'rfcn', prefix, epoch, output_dir=e2e_dir)
    test_rpn(cfg, 'rfcn', prefix, epoch, result_path=prop_dir)
    given = copy.deepcopy(cfg)
    given.TEST.HAS_RPN = False
    test_net(given, 'rfcn', prefix, epoch, output_dir=prop_dir)
    with open(os.path.join(e2e_dir, 'shapes_minitest_detections.pkl'), 'rb') as f:
        a = pickle.load(f)
    with open(os.path.join(prop_dir, 'shapes_minitest_detections.pkl'), 'rb') as f:
        b = pickle.load(f)
    count = 0
    for cls in range(1, len(a)):
        for x, y in zip(a[cls], b[cls]):
            assert x.shape == y.shape
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-3)
            count += len(x)
    assert count > 0


def test_head_training_from_proposals(alternate, tmp_path, losses):
    """R-FCN and Faster R-CNN heads trained on dumped proposals (loss falls, means/stds
    computed from the targets and folded into the checkpoint)."""
    from dcn.engine.proposals import train_rcnn
    import faster_rcnn  # noqa: F401
    _, out, _, _ = alternate
    proposals = os.path.join(out, 'rpn1')
    cfg = _cfg('shapes_mini_rfcn_proposals.yaml', tmp_path)
    prefix, epoch = train_rcnn(cfg, 'rfcn', proposals, model_prefix='rfcn', end_epoch=2)
    assert os.path.isfile('%s-0002.params' % prefix)
    assert losses['RCNNLogLoss'][1] < losses['RCNNLogLoss'][0]
    assert 'RPNAcc' not in losses
    rcfg = load_config(os.path.join(ROOT, 'experiments', 'faster_rcnn', 'cfgs',
                                    'shapes_mini_rcnn_proposals.yaml'))
    rcfg.output_path = str(tmp_path)
    prefix, epoch = train_rcnn(rcfg, 'faster_rcnn', proposals, model_prefix='rcnn')
    args, _ = load_param(prefix, epoch)
    assert 'bbox_pred_weight' in args and 'rpn_conv_3x3_weight' not in args


def test_entry_points_rpn_and_alternate(tmp_path):
    """The experiment scripts as a user runs them: the RPN script dumps proposals and prints
    recall; the alternate script leaves every step's checkpoint and the combined model, and
    tests it."""
    out = str(tmp_path / 'rpn')
    log = run_script(['experiments/rfcn/rfcn_rpn_train_test.py', '--cfg',
                      os.path.join(CFGS, 'shapes_mini_rfcn_rpn.yaml'), '--output_path', out])
    recalls = [float(r) for r in re.findall(r'proposals: average recall ([0-9.]+)', log)]
    assert len(recalls) == 3 and all(0.0 <= r <= 1.0 for r in recalls)
    pkl = os.path.join(out, 'shapes_mini_rfcn_rpn', 'minitest', 'rpn_data',
                       'shapes_minitest_rpn.pkl')
    with open(pkl, 'rb') as f:
        boxes = pickle.load(f)
    assert len(boxes) == 8 and all(b.shape[1] == 5 for b in boxes)

    out = str(tmp_path / 'alt')
    log = run_script(['experiments/rfcn/rfcn_alternate_train_test.py', '--cfg',
                      os.path.join(CFGS, 'shapes_mini_rfcn_alternate.yaml'), '--output_path', out])
    train_dir = os.path.join(out, 'shapes_mini_rfcn_alternate', 'minitrain')
    for name in ('rpn1-0001', 'rfcn1-0001', 'rpn2-0001', 'rfcn2-0001', 'final-0000'):
        assert os.path.isfile(os.path.join(train_dir, name + '.params')), name
    assert re.search(r'mAP@0\.5: [0-9.]+', log)
