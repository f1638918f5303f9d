"""Crash safety and exact resume of training (tiny Shapes set, small R-FCN with DCN).

Training runs in subprocesses that are killed with SIGKILL: checkpoints must never be
truncated, and resuming with ``TRAIN.RESUME`` must reproduce, bit for bit, the parameters of
a run that was never interrupted (same seeds, CPU). Exact equality is the right criterion
here: with the data order, the random draws and the optimizer state restored, every
operation of the resumed epoch sees the same inputs as the uninterrupted one, and the CPU
kernels are deterministic, so any difference, even one ulp, reveals lost state.
"""
import os
import random
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

import dcn.layers  # noqa: F401  (the saved symbol uses these custom operators
import dcn.ops  # noqa: F401   and these compiled ones)
from dcn.checkpoint import list_epochs, load_training_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')
PREFIX_NAME = 'rfcn_dcn_shapes_mini'

TRAIN_SCRIPT = r'''
import os, sys
from dcn.config import load_config, update_config
from dcn.dataset import filter_roidb, load_gt_roidb
from dcn.train import train_net

cfg_path, out, data, end_epoch, resume, num_images = sys.argv[1:7]
cfg = load_config(cfg_path)
cfg = update_config(cfg, {
    'output_path': out,
    'dataset': {'root_path': data, 'dataset_path': os.path.join(data, 'shapes')},
    'TRAIN': {'end_epoch': int(end_epoch), 'RESUME': resume == '1', 'lr_step': '1',
              'seed': 3}})
_, roidb = load_gt_roidb(cfg, cfg.dataset.image_set, flip=False)
roidb = filter_roidb(roidb)[:int(num_images)]
train_net(cfg, 'rfcn', 'mini', roidb=roidb, frequent=1)
print('TRAINING FINISHED', flush=True)
'''


def _env():
    import dcn
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([os.path.dirname(os.path.dirname(dcn.__file__)), ROOT,
                                         env.get('PYTHONPATH', '')])
    # One OpenMP thread: with several, the backward pass of DeformablePSROIPooling sums the
    # offset gradient in per-thread buffers filled in a dynamic schedule, so the rounding of
    # rfcn_*_offset_t's gradient (only) varies from run to run; everything else is
    # bit-reproducible with any thread count.
    env['OMP_NUM_THREADS'] = '1'
    return env


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    script = root / 'train.py'
    script.write_text(TRAIN_SCRIPT)
    return root


def _args(workdir, out, end_epoch, resume, num_images):
    return [sys.executable, str(workdir / 'train.py'), MINI_CFG, str(out), str(workdir / 'data'),
            str(end_epoch), '1' if resume else '0', str(num_images)]


def _run(workdir, out, end_epoch, resume, num_images, timeout=240):
    res = subprocess.run(_args(workdir, out, end_epoch, resume, num_images), env=_env(),
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=timeout)
    text = res.stdout.decode('utf-8', 'replace')
    assert res.returncode == 0, text[-4000:]
    assert 'TRAINING FINISHED' in text
    return text


def _prefix(out):
    return os.path.join(str(out), 'mini', 'minitrain', PREFIX_NAME)


def _load(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


def _kill_when(proc, marker, timeout=240):
    """SIGKILL ``proc`` as soon as a line of its output contains ``marker``; returns the output."""
    lines = []
    deadline = time.time() + timeout
    for raw in proc.stdout:
        line = raw.decode('utf-8', 'replace')
        lines.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline, 'marker %r not seen in time' % marker
    proc.wait(timeout=60)
    return ''.join(lines)


def test_kill_during_epoch_2_then_resume_equals_uninterrupted(workdir):
    num_images = 8  # 8 iterations per epoch: the kill lands well inside epoch 2
    ref = workdir / 'reference'
    _run(workdir, ref, 2, False, num_images)
    ref_prefix = _prefix(ref)
    assert list_epochs(ref_prefix) == [1, 2]

    # same command, killed with SIGKILL while epoch 2 (index 1) runs its second iteration
    out = workdir / 'killed'
    proc = subprocess.Popen(_args(workdir, out, 2, False, num_images), env=_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        text = _kill_when(proc, 'Epoch[1] Batch [1]')
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, text[-3000:]
    prefix = _prefix(out)
    assert list_epochs(prefix) == [1], 'the kill came too late: epoch 2 was already saved'

    # the same command with TRAIN.RESUME continues from epoch 1's checkpoint
    text = _run(workdir, out, 2, True, num_images)
    assert 'resuming training from %s-0001.params' % prefix in text
    assert 'restored training state from %s-0001.states' % prefix in text
    assert list_epochs(prefix) == [1, 2]

    for epoch in (1, 2):
        want = _load('%s-%04d.params' % (ref_prefix, epoch))
        got = _load('%s-%04d.params' % (prefix, epoch))
        assert sorted(got) == sorted(want)
        differ = [k for k in sorted(want) if not np.array_equal(want[k], got[k])]
        assert not differ, 'epoch %d: %d arrays differ, first %s' % (epoch, len(differ), differ[:3])
    # the optimizer state written after the resumed epoch equals the uninterrupted one too
    _, exact_ref = load_training_state(ref_prefix, 2)
    _, exact_got = load_training_state(prefix, 2)
    for k in exact_ref:
        assert np.array_equal(exact_ref[k], exact_got[k]), k

    # control: without the saved momentum the resumed epoch does differ, so the comparison
    # above is sensitive to lost optimizer state
    os.remove(prefix + '-0002.params')
    os.remove(prefix + '-0001.states')
    text = _run(workdir, out, 2, True, num_images)
    assert 'resuming with zero momentum' in text
    want = _load(ref_prefix + '-0002.params')
    got = _load(prefix + '-0002.params')
    assert any(not np.array_equal(want[k], got[k]) for k in want if k.startswith('arg:'))


def test_sigkill_at_random_moments_never_leaves_a_bad_checkpoint(workdir):
    """One image per epoch, so checkpoints are written all the time; every kill lands at a
    random moment (possibly inside a write), then training resumes in the same directory."""
    out = workdir / 'random_kills'
    prefix = _prefix(out)
    rng = random.Random(1234)
    kills = 0
    for attempt in range(5):
        resume = attempt > 0 and bool(list_epochs(prefix))
        proc = subprocess.Popen(_args(workdir, out, 1000, resume, 1), env=_env(), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # wait for the training loop to be writing checkpoints, then a random delay
            start = time.time()
            before = set(list_epochs(prefix))
            while set(list_epochs(prefix)) == before and proc.poll() is None:
                assert time.time() - start < 240, 'no checkpoint written in time'
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.5))
            assert proc.poll() is None, 'training ended before it was killed'
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        epochs = list_epochs(prefix)
        assert epochs, 'no checkpoint at all'
        for epoch in epochs:
            path = '%s-%04d.params' % (prefix, epoch)
            params = mx.nd.load(path)  # raises on a truncated file
            assert any(k.startswith('arg:') for k in params) and \
                any(k.startswith('aux:') for k in params), path
            # the training state is written before the .params file: it is complete too
            opt, exact = load_training_state(prefix, epoch)
            assert opt is not None and 'rfcn_bbox_weight' in exact
        mx.sym.load(prefix + '-symbol.json')
        # epochs continue across kills: nothing is lost or restarted
        assert epochs == list(range(1, epochs[-1] + 1))
    assert kills == 5
