"""End to end through the experiment scripts, as a user runs them: train a few epochs of the
tiny Shapes set, test, then reload the saved checkpoint with the test script.

Checks that the loss falls, that checkpoints are written for every epoch, that the evaluation
prints per-class AP and mAP, and that a checkpoint reloaded in a fresh process gives exactly
the detections computed right after training.
"""
import glob
import json
import os
import pickle
import re

import numpy as np
import pytest

from _util import ROOT, epoch_metric, run_script

CASES = {
    'rfcn_dcn': ('experiments/rfcn/rfcn_end2end_train_test.py', 'experiments/rfcn/rfcn_test.py',
                 'experiments/rfcn/cfgs/shapes_mini_rfcn_dcn.yaml'),
    'rcnn_dcn': ('experiments/faster_rcnn/rcnn_end2end_train_test.py',
                 'experiments/faster_rcnn/rcnn_test.py',
                 'experiments/faster_rcnn/cfgs/shapes_mini_rcnn_dcn.yaml'),
    'fpn': ('experiments/fpn/fpn_end2end_train_test.py', 'experiments/fpn/fpn_test.py',
            'experiments/fpn/cfgs/shapes_mini_fpn.yaml'),
}


def _detections(out_dir):
    files = glob.glob(os.path.join(out_dir, '**', '*_detections.pkl'), recursive=True)
    assert len(files) == 1, files
    with open(files[0], 'rb') as f:
        return files[0], pickle.load(f)


@pytest.mark.parametrize('case', sorted(CASES))
def test_train_test_then_reload_gives_same_detections(tmp_path, case):
    train_script, test_script, cfg = CASES[case]
    out = str(tmp_path / 'out')
    log = run_script([train_script, '--cfg', cfg, '--end_epoch', '2', '--output_path', out],
                     timeout=240)

    # the loss of the second epoch is below that of the first (same images, seeded)
    for name in ('RPNLogLoss', 'RCNNLogLoss'):
        assert epoch_metric(log, 1, name) < epoch_metric(log, 0, name), name
    # a checkpoint per epoch, and the evaluation printed
    params = sorted(glob.glob(os.path.join(out, '**', '*-000[12].params'), recursive=True))
    assert [p[-11:] for p in params] == ['0001.params', '0002.params']
    m = re.search(r'mAP@0\.5: ([0-9.]+)', log)
    assert m and 0.0 <= float(m.group(1)) <= 1.0
    assert re.search(r'AP@0\.5/(ellipse|rectangle|triangle|star|cross): ', log)
    # the metrics are also written as JSON beside the detections (dcn.tools.paper_table reads it)
    results = glob.glob(os.path.join(out, '**', '*_results.json'), recursive=True)
    assert len(results) == 1, results
    with open(results[0]) as f:
        saved = json.load(f)
    assert abs(saved['metrics']['mAP@0.5'] - float(m.group(1))) < 1e-4
    assert saved['metrics']['seconds_per_image'] > 0
    assert saved['model']['params'].endswith('-0002.params')

    det_file, first = _detections(out)
    os.remove(det_file)
    # a fresh process reloads epoch 2 from disk and detects again
    run_script([test_script, '--cfg', cfg, '--epoch', '2', '--output_path', out, '--ignore_cache'],
               timeout=240)
    _, second = _detections(out)    # all_boxes[class][image]: (k, 5) arrays
    assert len(first) == len(second)
    n_dets = 0
    for cls_a, cls_b in zip(first, second):
        assert len(cls_a) == len(cls_b)
        for a, b in zip(cls_a, cls_b):
            a = np.asarray(a)
            b = np.asarray(b)
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
            n_dets += len(a)
    assert n_dets > 0, 'the trained network detected nothing at all'
