"""DeepLab end to end through the experiment scripts on the tiny Shapes segmentation set:
train two epochs, test (palette PNGs, mIoU), then reload the checkpoint in a fresh process
with the test script: the predicted maps are exactly those written right after training."""
import glob
import os
import re

import numpy as np
import pytest

from _util import ROOT, epoch_metric, run_script

TRAIN = 'experiments/deeplab/deeplab_train_test.py'
TEST = 'experiments/deeplab/deeplab_test.py'
MINI = os.path.join(ROOT, 'experiments', 'deeplab', 'cfgs', 'shapes_mini_deeplab.yaml')


def _maps(out_dir):
    from PIL import Image
    files = sorted(glob.glob(os.path.join(out_dir, '**', 'segmentation', '*.png'),
                             recursive=True))
    maps = {}
    for f in files:
        with Image.open(f) as im:
            assert im.mode == 'P'          # palette PNG of class indices
            maps[os.path.basename(f)] = np.array(im)
    return maps


def _cfg(tmp_path, symbol):
    if symbol == 'resnet_v1_18_deeplab':
        return MINI
    p = tmp_path / ('shapes_mini_%s.yaml' % symbol)
    p.write_text('_BASE_: %s\nsymbol: %s\n' % (MINI, symbol))
    return str(p)


@pytest.mark.parametrize('symbol', ['resnet_v1_18_deeplab', 'resnet_v1_18_deeplab_dcn'])
def test_train_test_then_reload_gives_same_segmentation(tmp_path, symbol):
    cfg = _cfg(tmp_path, symbol)
    out = str(tmp_path / 'out')
    log = run_script([TRAIN, '--cfg', cfg, '--end_epoch', '2', '--output_path', out])

    # the pixel loss of the second epoch is below that of the first (same images, seeded)
    assert epoch_metric(log, 1, 'PixelLogLoss') < epoch_metric(log, 0, 'PixelLogLoss')
    params = sorted(glob.glob(os.path.join(out, '**', '*-000[12].params'), recursive=True))
    assert [p[-11:] for p in params] == ['0001.params', '0002.params']
    miou = [float(v) for v in re.findall(r'mIoU\s+([0-9.]+)', log)]
    assert miou and 0.0 <= miou[-1] <= 1.0
    first = _maps(out)
    assert len(first) == 8       # one map per minitest image

    # a fresh process loads the checkpoint and predicts the same maps
    out2 = str(tmp_path / 'out2')
    prefix = params[-1][:-len('-0002.params')]
    log2 = run_script([TEST, '--cfg', cfg, '--epoch', '2', '--prefix', prefix, '--output_path',
                       out2])
    again = _maps(out2)
    assert sorted(again) == sorted(first)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name], err_msg=name)
    assert re.findall(r'mIoU\s+([0-9.]+)', log2)[-1] == re.findall(r'mIoU\s+([0-9.]+)', log)[-1]
