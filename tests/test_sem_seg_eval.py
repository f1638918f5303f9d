"""Segmentation metric: the original's confusion-matrix mIoU on hand-made cases."""
import numpy as np
import pytest

from dcn.evaluation.sem_seg import (SemSegEvaluator, confusion_matrix, evaluate_segmentation,
                                    iou_from_confusion)


def test_hand_made_confusion_with_a_class_never_present():
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    cm = confusion_matrix(gt, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    ev = SemSegEvaluator(3, class_names=['bg', 'a', 'b'])
    ev.process(gt, pred)
    res = ev.evaluate()
    # IoU = TP / max(1, GT + Pred - TP): 1/(2+1-1), 2/(2+3-2), 0/max(1, 0)
    np.testing.assert_allclose(res['IoU'], [0.5, 2.0 / 3.0, 0.0])
    # mean over all 3 classes: the absent class counts as 0
    assert res['mIoU'] == pytest.approx((0.5 + 2.0 / 3.0) / 3.0)
    assert res['meanIU'] == res['mIoU']
    assert res['IoU/b'] == 0.0
    assert res['pixel_accuracy'] == pytest.approx(3.0 / 4.0)


def test_ignore_pixels_are_not_counted():
    gt = np.array([[255, 1, 1], [0, 255, 0]])
    pred = np.array([[2, 1, 1], [0, 2, 0]])      # wrong only where gt is 255
    res = evaluate_segmentation([gt], [pred], 3)
    assert res['confusion_matrix'].sum() == 4
    np.testing.assert_allclose(res['IoU'], [1.0, 1.0, 0.0])
    assert res['pixel_accuracy'] == 1.0
    # an image that is entirely ignored adds nothing
    ev = SemSegEvaluator(3)
    ev.process(np.full((2, 2), 255), np.zeros((2, 2), np.int64))
    assert ev.evaluate()['confusion_matrix'].sum() == 0 and ev.evaluate()['mIoU'] == 0.0


def test_one_matrix_over_the_set_not_a_mean_of_images():
    g1, p1 = np.array([[0, 0, 0, 1]]), np.array([[0, 0, 0, 0]])
    g2, p2 = np.array([[1, 1]]), np.array([[1, 1]])
    res = evaluate_segmentation([g1, g2], [p1, p2], 2)
    # summed cm: [[3, 0], [1, 2]] -> IoU 3/4, 2/3
    assert res['confusion_matrix'].tolist() == [[3, 0], [1, 2]]
    np.testing.assert_allclose(res['IoU'], [0.75, 2.0 / 3.0])
    ev = SemSegEvaluator(2)
    ev.process(g1, p1)
    ev.process(g2, p2)
    np.testing.assert_allclose(ev.evaluate()['IoU'], res['IoU'])
    ev.reset()
    assert ev.evaluate()['confusion_matrix'].sum() == 0 and ev.num_images == 0


def test_cityscapes_resizes_prediction_to_gt():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 255, 255],
                   [2, 2, 255, 255]])
    pred = np.array([[0, 1],
                     [2, 0]])                     # half resolution: each value covers 2x2
    ev = SemSegEvaluator(3, resize='pred_to_gt')
    ev.process(gt, pred)
    cm = ev.evaluate()['confusion_matrix']
    assert cm.tolist() == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]  # 12 pixels at gt size


def test_voc_resizes_gt_to_prediction():
    gt = np.array([[0, 9, 1, 9],
                   [9, 9, 9, 9],
                   [2, 9, 255, 9],
                   [9, 9, 9, 9]])                 # 9 never survives nearest downscaling x0.5
    pred = np.array([[0, 1],
                     [2, 2]])
    ev = SemSegEvaluator(3, resize='gt_to_pred')
    ev.process(gt, pred)
    cm = ev.evaluate()['confusion_matrix']
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]  # 3 pixels at prediction size
    # the other rule sees the 9s and rejects them
    with pytest.raises(ValueError, match='label 9'):
        SemSegEvaluator(3, resize='pred_to_gt').process(gt, pred)


def test_bad_inputs_are_errors():
    ev = SemSegEvaluator(3)
    with pytest.raises(ValueError, match='class 3'):
        ev.process(np.zeros((2, 2)), np.full((2, 2), 3))
    with pytest.raises(ValueError, match='non-integer'):
        ev.process(np.zeros((2, 2)), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match='label map'):
        ev.process(np.zeros((2, 2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match='same length'):
        ev.process([np.zeros((2, 2))], [])
    with pytest.raises(ValueError, match='resize'):
        SemSegEvaluator(3, resize='bilinear')
    with pytest.raises(ValueError, match='2 names'):
        SemSegEvaluator(3, class_names=['a', 'b'])
    assert ev.num_images == 0


def test_iou_from_confusion_matches_definition():
    rng = np.random.RandomState(0)
    cm = rng.randint(0, 50, size=(5, 5))
    cm[3, :] = 0
    cm[:, 3] = 0
    iou = iou_from_confusion(cm)
    for c in range(5):
        tp = cm[c, c]
        assert iou[c] == pytest.approx(tp / max(1.0, cm[c].sum() + cm[:, c].sum() - tp))
    assert iou[3] == 0.0
