"""benchmarks/bench_e2e.py times what the tester runs: its predictor path gives the tester's
inputs and outputs for the same weights, and every config it names loads."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    spec = importlib.util.spec_from_file_location(
        'bench_e2e', os.path.join(ROOT, 'benchmarks', 'bench_e2e.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.mark.parametrize('path', ['experiments/fpn/cfgs/shapes_mini_fpn.yaml',
                                  'experiments/rfcn/cfgs/shapes_mini_rfcn_dcn.yaml'])
def test_benchmark_forward_gives_the_testers_detections(tmp_path, monkeypatch, path):
    import mxnet as mx
    import dcn.layers  # noqa: F401
    from dcn import tester
    from dcn.checkpoint import save_checkpoint
    from dcn.engine.predictor import Predictor, decode_detections
    from dcn.train import get_symbol_instance

    fwd, shape = bench.shapes_inference(path)
    assert isinstance(fwd.predictor, Predictor)
    out = fwd()
    im_info = fwd.inputs['im_info']
    scores, boxes = decode_detections(out, im_info, im_info[:, 2])

    # the tester on a checkpoint holding the benchmark's weights
    cfg = bench.load_cfg(path)
    package = bench.package_of(path)
    sym = get_symbol_instance(package, cfg).get_symbol(cfg, is_train=False)
    prefix = str(tmp_path / 'model')
    save_checkpoint(prefix, 1, sym, fwd.predictor.arg_params, fwd.predictor.aux_params)
    seen = []
    real_im_detect = tester.im_detect

    def recording(predictor, batch, data_names, scales, cfg_):
        result = real_im_detect(predictor, batch, data_names, scales, cfg_)
        if not seen:
            seen.append((dict(zip(data_names, [d.asnumpy() for d in batch.data])),
                         list(batch.index), result))
        return result
    monkeypatch.setattr(tester, 'im_detect', recording)
    tester.test_net(cfg, package, prefix, 1, ctx=[mx.cpu()], output_dir=str(tmp_path))
    data, index, (t_scores, t_boxes, _) = seen[0]
    assert index[0] == 0  # the first test image, as the benchmark's
    assert list(data['data'].shape[2:]) == shape
    np.testing.assert_array_equal(data['data'], fwd.inputs['data'])
    np.testing.assert_array_equal(data['im_info'], im_info)
    assert scores[0].shape == t_scores[0].shape and scores[0].shape[0] > 0
    np.testing.assert_allclose(scores[0], t_scores[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(boxes[0], t_boxes[0], rtol=1e-5, atol=1e-3)


def test_benchmark_configs_load():
    paths = list(bench.R101.values()) + list(bench.SHAPES) + list(bench.FPN101.values()) + \
        [p for _, _, _, nets in bench.DEEPLAB for p in nets.values()]
    from dcn.train import get_symbol_instance
    for path in paths:
        cfg = bench.load_cfg(path)
        get_symbol_instance(bench.package_of(path), cfg)
    # the FPN part's single test scale: SCALES[0], sides multiples of the image stride
    from dcn.config import get_scales
    cfg = bench.load_cfg(bench.FPN101['FPN (deformable)'])
    assert get_scales(cfg)[0] == (800, 1280) and cfg.network.IMAGE_STRIDE == 32
    with pytest.raises(ValueError, match='experiments/<family>'):
        bench.package_of('cfgs/x.yaml')


def test_benchmark_command_line_runs_a_shapes_part():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'lib'), ROOT]))
    path = 'experiments/fpn/cfgs/shapes_mini_fpn.yaml'
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'bench_e2e.py'),
                           '--parts', 'b', '--shapes', path, '--threads', '1',
                           '--repeat', '1'], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = [line.split() for line in proc.stdout.decode().splitlines()
            if line.startswith(path)]
    assert len(rows) == 1
    infer_ms, train_ms = float(rows[0][2]), float(rows[0][3])
    assert infer_ms > 0 and train_ms > 0
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'bench_e2e.py'),
                           '--parts', 'b', '--shapes', 'experiments/fpn/cfgs/nope.yaml'],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 2 and b'nope.yaml' in proc.stderr
