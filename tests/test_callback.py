"""Speedometer logging."""
import logging

import mxnet as mx
import pytest

from dcn.callback import Speedometer
from dcn.metric import RPNAccMetric


def test_speedometer_logs_every_frequent(caplog):
    log = logging.getLogger('speedtest')
    meter = Speedometer(batch_size=2, frequent=2, logger=log)
    metric = RPNAccMetric()
    metric.sum_metric, metric.num_inst = 3.0, 4
    with caplog.at_level(logging.INFO, logger='speedtest'):
        for n in range(5):
            meter(mx.model.BatchEndParam(epoch=1, nbatch=n, eval_metric=metric, locals=None))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith('Epoch[1] Batch [2]') and 'samples/sec' in lines[0]
    assert 'RPNAcc=0.750000' in lines[0]
    assert meter.last_speed > 0
    with pytest.raises(ValueError, match='frequent'):
        Speedometer(1, 0)
