"""Helpers shared by several test modules (imported as ``_util``; pytest puts tests/ on
sys.path)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA_DIR = os.path.join(ROOT, 'operator_cxx', 'cuda')
CXX = shutil.which(os.environ.get('CXX', 'g++')) or shutil.which('c++')


def run_script(args, timeout=300):
    """Runs ``python args...`` in the repository root as a user does (one OpenMP thread);
    asserts it succeeds and returns its output (stdout and stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'lib')]),
               OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def epoch_metric(log, epoch, name):
    """The training metric ``name`` that a training log reports for ``epoch``."""
    m = re.search(r'Epoch\[%d\] Train-%s=([0-9.eE+-]+)' % (epoch, name), log)
    assert m, 'no %s for epoch %d in the log' % (name, epoch)
    return float(m.group(1))


def flat(d, leaf=lambda v: v, prefix=''):
    """A nested dict as one dict of dotted keys ('TRAIN.lr'), each value passed through
    ``leaf``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, leaf, prefix + k + '.'))
        else:
            out[prefix + k] = leaf(v)
    return out


def shapes_config(shapes_root, dataset='Shapes'):
    """The default configuration on the Shapes set generated under ``shapes_root``."""
    from dcn.config import default_config
    cfg = default_config()
    cfg.dataset.dataset = dataset
    cfg.dataset.root_path = shapes_root
    cfg.dataset.dataset_path = os.path.join(shapes_root, 'shapes')
    cfg.dataset.NUM_CLASSES = 6
    return cfg


def cuda_emulation(prefix, opt='-O2'):
    """Generator of a pytest fixture: compiles the host emulation of the CUDA code
    (operator_cxx/cuda/emu/dcn_cuda_emu.cc, warnings as errors) into a temporary folder,
    yields it loaded by ``dcn_cuda_ctypes.load`` and removes the folder afterwards; skips
    without a C++ compiler."""
    import pytest
    if CXX is None:
        pytest.skip('no C++ compiler: cannot build the host emulation of the CUDA code')
    sys.path.insert(0, CUDA_DIR)
    import dcn_cuda_ctypes as dc
    tmp = tempfile.mkdtemp(prefix=prefix)
    path = os.path.join(tmp, 'libdcn_cuda_emu.so')
    res = subprocess.run([CXX, '-std=c++17', opt, '-shared', '-fPIC', '-Wall', '-Werror',
                          '-Wno-unused-parameter', os.path.join(CUDA_DIR, 'emu', 'dcn_cuda_emu.cc'),
                          '-o', path], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    yield dc.load(path)
    shutil.rmtree(tmp, ignore_errors=True)
