"""A user's mistake on the command line is one line ``error: ...`` naming the file or key,
with exit status 1 and no traceback (the traceback only with ``--debug``), for every entry
point: the experiment scripts (train+test, test), the family scripts and the demos."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')
VOC = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs',
                   'resnet_v1_101_voc0712_rfcn_dcn_end2end_ohem.yaml')


def _run(script, args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'lib')]),
               OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + args, cwd=str(cwd),
                          env=env, timeout=240, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    return proc.returncode, proc.stdout, proc.stderr


def _one_error_line(rc, out, err, *needles):
    assert rc == 1, (rc, out[-2000:], err[-2000:])
    assert 'Traceback' not in out + err, err[-3000:]
    lines = [l for l in err.splitlines() if l.startswith('error: ')]
    assert len(lines) == 1, err[-3000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _cfg(tmp_path, text, name='user.yaml'):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize('script', ['experiments/rfcn/rfcn_end2end_train_test.py',
                                    'experiments/faster_rcnn/rcnn_test.py',
                                    'rfcn/train_end2end.py'])
def test_missing_config_file(tmp_path, script):
    _one_error_line(*_run(script, ['--cfg', 'nowhere.yaml'], tmp_path), 'nowhere.yaml',
                    '--cfg')


def test_mistyped_key_names_key_file_and_the_likely_key(tmp_path):
    path = _cfg(tmp_path, '_BASE_: %s\nTRAIN:\n  lr_stpe: "1"\n' % MINI)
    line = _one_error_line(*_run('experiments/rfcn/rfcn_end2end_train_test.py',
                                 ['--cfg', path], tmp_path), path, 'TRAIN.lr_stpe')
    assert "did you mean 'TRAIN.lr_step'" in line


def test_unknown_key_in_base_names_the_base(tmp_path):
    base = _cfg(tmp_path, 'network:\n  BACKBONE: x\n', 'base.yaml')
    path = _cfg(tmp_path, '_BASE_: base.yaml\n')
    _one_error_line(*_run('experiments/rfcn/rfcn_test.py', ['--cfg', path], tmp_path), base,
                    'network.BACKBONE')


def test_corrupt_and_mismatched_params(tmp_path):
    path = _cfg(tmp_path, '_BASE_: %s\noutput_path: %s\n' % (MINI, tmp_path / 'out'))
    bad = tmp_path / 'bad-0001.params'
    bad.write_bytes(b'\x00not a params file' * 8)
    _one_error_line(*_run('experiments/rfcn/rfcn_test.py', ['--cfg', path, '--prefix',
                                                             str(tmp_path / 'bad'), '--epoch',
                                                             '1'], tmp_path),
                    str(bad), 'cannot read')
    mx.nd.save(str(tmp_path / 'other-0001.params'),
               {'arg:conv1_weight': mx.nd.array(np.zeros((3, 3, 1, 1), np.float32))})
    _one_error_line(*_run('experiments/rfcn/rfcn_test.py', ['--cfg', path, '--prefix',
                                                             str(tmp_path / 'other'), '--epoch',
                                                             '1'], tmp_path),
                    'other-0001.params', 'conv1_weight')
    # a missing checkpoint names the file
    _one_error_line(*_run('experiments/rfcn/rfcn_test.py', ['--cfg', path, '--epoch', '9'],
                          tmp_path), '-0009.params', 'not found')


def test_missing_dataset_names_the_path_and_key(tmp_path):
    _one_error_line(*_run('experiments/rfcn/rfcn_test.py', ['--cfg', VOC, '--gpus', ''],
                          tmp_path), 'VOCdevkit', 'dataset.dataset_path')


def test_demos_missing_model(tmp_path):
    _one_error_line(*_run('rfcn/demo.py', ['--params', str(tmp_path / 'none')], tmp_path),
                    'none-0000.params')
    _one_error_line(*_run('faster_rcnn/demo.py', ['--cfg', 'nowhere.yaml'], tmp_path),
                    'nowhere.yaml')


def test_debug_shows_the_traceback(tmp_path):
    rc, out, err = _run('experiments/rfcn/rfcn_test.py', ['--cfg', 'nowhere.yaml', '--debug'],
                        tmp_path)
    assert rc != 0 and 'Traceback' in err and 'FileNotFoundError' in err
