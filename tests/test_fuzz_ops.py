"""Fuzzing the Python entry points of the deformable operators with bad input.

Every call of ``dcn.ops.nd.*`` and of ``dcn.ops.sym.*`` (through ``simple_bind`` /
``forward`` / ``backward``) with random, often invalid, arguments, shapes and values
(NaN, infinities, huge offsets, RoIs outside the image) must either return a result or
raise an error carrying a message: never crash the process, never hang. The cases run in
a child process (this file run as a script) under a time limit, so a crash is reported
as a test failure naming the case being run, not the death of pytest.

Repeatable: the cases are drawn by hypothesis from a fixed seed, ``HYPOTHESIS_SEED``
(default 20240521); ``FUZZ_CASES`` sets the number of cases per operator entry (default
160, i.e. 1600 calls over the 10 entries); ``FUZZ_MIN_NDIM=1`` leaves out 0-d inputs.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SEED = 20240521
OPS = ('DeformableConvolution', 'ModulatedDeformableConvolution', 'DeformablePSROIPooling',
       'PSROIPooling', 'Conv1x1DeformablePSROIPooling')


# ---------------------------------------------------------------------------------------
# child process
# ---------------------------------------------------------------------------------------
def _worker(seed, cases, trace_path):
    import mxnet as mx
    from hypothesis import HealthCheck, given, settings, seed as hseed, strategies as st
    import dcn.ops
    from dcn.ops import nd as dnd, sym as dsym

    dcn.ops.load_library()
    print('operator library: %s' % dcn.ops.LIB_PATH, file=sys.stderr, flush=True)
    counts = {'ok': 0, 'error': 0}
    bad_messages = []
    st_special = st.sampled_from([0.0, -0.0, 1e30, -1e30, 3e9, -3e9, 0.5, -7.25, 1e-30,
                                  float('nan'), float('inf'), float('-inf')])

    def values(draw, shape, special):
        """Random float32 array of ``shape``; some entries replaced by special values (the
        dtype of a case is chosen by with_dtypes)."""
        rng = np.random.RandomState(draw(st.integers(0, 2 ** 31 - 1)))
        scale = draw(st.sampled_from([1.0, 4.0, 100.0, 1e6]))
        arr = (rng.standard_normal(shape) * scale).astype(np.float32)
        if special and arr.size:
            k = draw(st.integers(0, min(arr.size, 6)))
            for _ in range(k):
                arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st_special)
        return arr

    # FUZZ_MIN_NDIM=1 leaves out 0-d inputs (to look past a known failure with them)
    min_ndim = int(os.environ.get('FUZZ_MIN_NDIM', 0))
    small_int = st.integers(-2, 5)
    garbage = st.sampled_from(['abc', '(1,', '', '1e400', '(3,3,3,3)', '-', 'True', '(0,0)',
                               '(2147483647,2147483647)'])

    def with_dtypes(draw, arrays, bad):
        """All arrays of one supported dtype (float32 mostly); now and then one of them of
        another dtype (an error)."""
        dtype = draw(st.sampled_from(['float32', 'float32', 'float16', 'float64']))
        arrays = {k: v.astype(dtype) for k, v in arrays.items()}
        if bad and draw(st.floats(0, 1)) < 0.1:
            k = draw(st.sampled_from(sorted(arrays)))
            arrays[k] = arrays[k].astype(draw(st.sampled_from(['float16', 'float64', 'int32'])))
        return arrays

    def shape_strategy(ndim=None):
        return st.lists(st.integers(0, 5), min_size=min_ndim if ndim is None else ndim,
                        max_size=5 if ndim is None else ndim).map(tuple)

    def maybe(draw, valid, invalid, p_invalid):
        return draw(invalid) if draw(st.floats(0, 1)) < p_invalid else valid

    def tup(n, lo, hi):
        return st.tuples(*[st.integers(lo, hi)] * n)

    @st.composite
    def conv_case(draw, modulated):
        bad = draw(st.booleans())  # half the cases valid (with extreme values), half not
        N, C, H, W = (draw(st.integers(1, 2)), draw(st.integers(1, 4)),
                      draw(st.integers(1, 7)), draw(st.integers(1, 7)))
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        group = draw(st.sampled_from([g for g in (1, 2) if C % g == 0]))
        dgroup = draw(st.sampled_from([g for g in (1, 2, 4) if C % g == 0]))
        F = group * draw(st.integers(1, 3))
        Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        params = {'kernel': (kh, kw), 'stride': (sh, sw), 'dilate': (dh, dw), 'pad': (ph, pw),
                  'num_filter': F, 'num_group': group, 'num_deformable_group': dgroup,
                  'no_bias': draw(st.booleans())}
        if modulated and draw(st.booleans()):
            params['im2col_step'] = draw(st.integers(-1, 3))
        # break one argument now and then
        for key in list(params):
            if bad and draw(st.floats(0, 1)) < 0.1:
                params[key] = draw(st.one_of(garbage, small_int, tup(2, -1, 9), tup(3, 0, 3),
                                             st.none()))
        if bad and draw(st.floats(0, 1)) < 0.05:
            params['layout'] = draw(st.sampled_from(['NCHW', 'NHWC', 'NCW', 'xyz']))
        shapes = {'data': (N, C, H, W), 'offset': (N, 2 * dgroup * kh * kw, max(Ho, 0), max(Wo, 0)),
                  'weight': (F, C // group, kh, kw), 'bias': (F,)}
        if modulated:
            shapes['mask'] = (N, dgroup * kh * kw, max(Ho, 0), max(Wo, 0))
        for key in list(shapes):
            shapes[key] = maybe(draw, shapes[key], shape_strategy(), 0.12 if bad else 0.0)
        special = draw(st.booleans())
        arrays = {k: values(draw, s, special and k in ('offset', 'mask', 'data'))
                  for k, s in shapes.items()}
        return params, with_dtypes(draw, arrays, bad)

    @st.composite
    def pool_case(draw, deformable, fused=False):
        bad = draw(st.booleans())  # half the cases valid (with extreme values), half not
        N, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
        group = draw(st.integers(1, 3))
        pooled = draw(st.integers(1, 3))
        out_dim = draw(st.integers(1, 3))
        R = draw(st.integers(1, 5))
        scale = draw(st.sampled_from([1.0, 0.5, 0.0625, 1e10] + ([0.0, -1.0] if bad else [])))
        params = {'spatial_scale': scale, 'output_dim': out_dim, 'pooled_size': pooled,
                  'group_size': group}
        shapes = {'data': (N, out_dim * group * group, H, W)}
        if fused:  # 1x1 convolution (weight, bias) of data, then no_trans pooling
            cin = draw(st.integers(1, 4))
            shapes = {'data': (N, cin, H, W), 'weight': (out_dim * group * group, cin, 1, 1),
                      'bias': (out_dim * group * group,)}
            params.update({'part_size': draw(st.integers(1, 3)),
                           'sample_per_part': draw(st.integers(1, 3))})
        elif deformable:
            part = draw(st.integers(1, 3))
            no_trans = draw(st.booleans())
            ncls = draw(st.sampled_from([c for c in (1, 2, 3) if out_dim % c == 0]))
            params.update({'part_size': part, 'sample_per_part': draw(st.integers(1, 3)),
                           'trans_std': draw(st.sampled_from([0.0, 0.1, 1.0, 1e8])),
                           'no_trans': no_trans})
            if not no_trans:
                shapes['trans'] = (R, 2 * ncls, part, part)
        for key in list(params):
            if bad and draw(st.floats(0, 1)) < 0.1:
                params[key] = draw(st.one_of(garbage, small_int, st.floats(allow_nan=True),
                                             st.none()))
        # RoIs: in the image, outside it, inverted, huge, batch index out of range, NaN
        rng = np.random.RandomState(draw(st.integers(0, 2 ** 31 - 1)))
        extent = max(H, W) / (scale if scale > 0 else 1.0)
        rois = rng.uniform(-extent, 2 * extent, size=(R, 5)).astype(np.float32)
        rois[:, 0] = rng.randint(0, N, size=R)
        kind = draw(st.sampled_from(['normal', 'huge'] + (['batch', 'special'] if bad else [])))
        if kind == 'batch':
            rois[draw(st.integers(0, R - 1)), 0] = draw(st.sampled_from([-1, N, N + 7, 0.5, 1e9,
                                                                         -0.999, N - 0.001]))
        elif kind == 'special':
            rois.flat[draw(st.integers(0, rois.size - 1))] = draw(st_special)
        elif kind == 'huge':
            rois[:, 1:] *= 1e7
        p_shape = 0.12 if bad else 0.0
        arrays = {'data': values(draw, maybe(draw, shapes['data'], shape_strategy(), p_shape),
                                 draw(st.booleans())),
                  'rois': maybe(draw, rois, st.builds(lambda s: np.zeros(s, np.float32),
                                                      shape_strategy()), p_shape)}
        for key in ('trans', 'weight', 'bias'):
            if key in shapes:
                arrays[key] = values(draw, maybe(draw, shapes[key], shape_strategy(), p_shape),
                                     True)
        return params, with_dtypes(draw, arrays, bad)

    def trace(entry, params, arrays):
        with open(trace_path, 'w') as f:
            json.dump({'entry': entry, 'params': {k: repr(v) for k, v in params.items()},
                       'shapes': {k: list(v.shape) for k, v in arrays.items()},
                       'arrays': {k: v.ravel()[:64].tolist() for k, v in arrays.items()}},
                      f, default=str)

    def outcome(fn, errors=(mx.base.MXNetError, ValueError, TypeError)):
        try:
            outs = fn()
            for o in outs:
                o.asnumpy()  # errors of the asynchronous engine surface here
            counts['ok'] += 1
        except errors as exc:
            counts['error'] += 1
            if os.environ.get('FUZZ_DEBUG'):  # which checks reject the cases
                lines = [l for l in str(exc).splitlines() if l.strip()]
                print('ERR', type(exc).__name__, lines[-1][:200] if lines else '',
                      file=sys.stderr)
            if not str(exc).strip():
                bad_messages.append(type(exc).__name__)

    def nd_call(op, params, arrays):
        kwargs = dict(params)
        kwargs.update({k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
        if kwargs.get('no_bias') is True:
            kwargs.pop('bias', None)
        res = getattr(dnd, op)(**kwargs)
        return res if isinstance(res, (list, tuple)) else [res]

    def sym_call(op, params, arrays, backward):
        # MXNet 1.9 takes a 0-d shape at bind time for "rank unknown", and its shape
        # inference for extension operators then writes one value past its own buffer per
        # such input (heap corruption inside libmxnet, before any operator code runs; the
        # symbol wrappers declare the rank of every parameter they create for this reason).
        # Bound through symbols, such inputs are given rank 1 instead (still the wrong rank).
        arrays = {k: (v.reshape(1) if v.ndim == 0 else v) for k, v in arrays.items()}
        inputs = {k: mx.sym.var(k) for k in arrays}
        kwargs = dict(params)
        kwargs.update(inputs)
        if kwargs.get('no_bias') is True:
            kwargs.pop('bias', None)
        out = getattr(dsym, op)(name='fz', **kwargs)
        shapes = {k: v.shape for k, v in arrays.items() if k in out.list_arguments()}
        ex = out.simple_bind(mx.cpu(), grad_req='write' if backward else 'null',
                             type_dict={k: arrays[k].dtype for k in shapes}, **shapes)
        for k, v in arrays.items():
            if k in ex.arg_dict:
                ex.arg_dict[k][:] = v
        outs = ex.forward(is_train=backward)
        if backward:
            ex.backward([mx.nd.ones(o.shape, dtype=o.dtype) for o in outs])
            return list(outs) + [g for g in ex.grad_arrays if g is not None]
        return list(outs)

    def run_entry(entry, strategy):
        kind, op = entry.split('.', 1)

        @hseed(seed + sum(map(ord, entry)))
        @settings(max_examples=cases, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @given(case=strategy, backward=st.booleans())
        def run(case, backward):
            params, arrays = case
            trace(entry, params, arrays)
            if kind == 'nd':
                outcome(lambda: nd_call(op, params, arrays))
            else:
                # Symbol.simple_bind reports a failed shape inference as RuntimeError
                outcome(lambda: sym_call(op, params, arrays, backward),
                        (mx.base.MXNetError, ValueError, TypeError, RuntimeError))
        run()

    strategies = {'DeformableConvolution': conv_case(False),
                  'ModulatedDeformableConvolution': conv_case(True),
                  'DeformablePSROIPooling': pool_case(True),
                  'PSROIPooling': pool_case(False),
                  'Conv1x1DeformablePSROIPooling': pool_case(True, fused=True)}
    for op in OPS:
        for kind in ('nd', 'sym'):
            run_entry('%s.%s' % (kind, op), strategies[op])
    mx.nd.waitall()
    print(json.dumps({'counts': counts, 'empty_messages': bad_messages}), flush=True)


# ---------------------------------------------------------------------------------------
# tests (parent process)
# ---------------------------------------------------------------------------------------
def _env():
    import dcn  # the child uses the same package (and operator library) as this process
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([os.path.dirname(os.path.dirname(dcn.__file__)), ROOT,
                                         env.get('PYTHONPATH', '')])
    env.setdefault('OMP_NUM_THREADS', '2')
    return env


def test_fuzz_operator_entry_points(tmp_path):
    seed = int(os.environ.get('HYPOTHESIS_SEED', DEFAULT_SEED))
    cases = int(os.environ.get('FUZZ_CASES', 160))
    trace_path = tmp_path / 'last_case.json'
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', str(seed), str(cases),
           str(trace_path)]
    try:
        res = subprocess.run(cmd, env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=300)
    except subprocess.TimeoutExpired:
        last = trace_path.read_text() if trace_path.exists() else '?'
        pytest.fail('fuzzing hung (seed %d); last case: %s' % (seed, last))
    if res.returncode != 0:
        last = trace_path.read_text() if trace_path.exists() else '?'
        pytest.fail('fuzz worker died with status %d (seed %d)\nlast case: %s\nstderr: %s'
                    % (res.returncode, seed, last,
                       res.stderr.decode('utf-8', 'replace')[-3000:]))
    report = json.loads(res.stdout.decode().strip().splitlines()[-1])
    counts = report['counts']
    assert counts["ok"] + counts["error"] >= 2 * len(OPS) * cases, counts
    # both outcomes are exercised: the fuzz is not all rejected up front, nor all accepted
    assert (counts["ok"] >= 0.1 * 2 * len(OPS) * cases and
            counts["error"] >= 0.1 * 2 * len(OPS) * cases), counts
    assert not report['empty_messages'], report['empty_messages']


# ---------------------------------------------------------------------------------------
# out-of-range RoIs: as MXNet's built-in operators, or a clear error
# ---------------------------------------------------------------------------------------
def _extreme_rois(N, img):
    return np.array([
        [0, -50, -40, -10, -5],                  # entirely left of / above the image
        [N - 1, img + 10, img + 20, img + 90, img + 99],   # entirely beyond it
        [0, -1e6, -1e6, 1e6, 1e6],               # huge, covering everything
        [N - 1, 20, 30, 5, 8],                   # inverted (x2 < x1, y2 < y1)
        [0, 12, 12, 12, 12],                     # a single pixel
        [N - 1, -30, 10, img + 30, 20],          # straddling two borders
        [0, 3.7e9, -3.7e9, 4e9, -3e9],           # beyond the int range
    ], np.float32)


@pytest.mark.parametrize('deformable', [False, True])
def test_out_of_range_rois_match_builtin(deformable):
    import mxnet as mx
    from dcn.ops import nd as dnd
    rng = np.random.RandomState(3)
    N, group, out_dim, H, W = 2, 3, 2, 6, 7
    data = mx.nd.array(rng.standard_normal((N, out_dim * group * group, H, W)))
    rois = mx.nd.array(_extreme_rois(N, 8 * 7))
    common = dict(spatial_scale=0.125, output_dim=out_dim, pooled_size=group, group_size=group)
    if deformable:
        trans = mx.nd.array(rng.standard_normal((rois.shape[0], 2, group, group)))
        extra = dict(part_size=group, sample_per_part=2, trans_std=0.1)
        ours = dnd.DeformablePSROIPooling(data=data, rois=rois, trans=trans, **common, **extra)
        ref = mx.nd.contrib.DeformablePSROIPooling(data=data, rois=rois, trans=trans, **common,
                                                   **extra)
    else:
        ours = dnd.PSROIPooling(data=data, rois=rois, **common)
        ref = mx.nd.contrib.PSROIPooling(data=data, rois=rois, **common)
    ours, ref = ours.asnumpy(), ref.asnumpy()
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    assert np.all(ours[0] == 0) and np.all(ours[1] == 0)   # no pixel in the image: zero


@pytest.mark.parametrize('batch_index', [-1.0, 2.0, 1e9, -1e9, float('nan'), float('inf')])
@pytest.mark.parametrize('op', ['PSROIPooling', 'DeformablePSROIPooling',
                                'Conv1x1DeformablePSROIPooling'])
def test_roi_batch_index_outside_batch_is_an_error(op, batch_index):
    """An index outside the batch after truncation: MXNet's built-ins read outside the input
    for such a RoI; ours refuse it, naming the row."""
    import mxnet as mx
    from dcn.ops import nd as dnd
    data = mx.nd.ones((2, 4, 5, 5))
    rois = mx.nd.array([[0, 0, 0, 8, 8], [batch_index, 0, 0, 8, 8]])
    kwargs = dict(spatial_scale=0.5, output_dim=1, pooled_size=2, group_size=2)
    if op == 'DeformablePSROIPooling':
        kwargs.update(part_size=2, sample_per_part=1, no_trans=True)
    if op == 'Conv1x1DeformablePSROIPooling':
        kwargs.update(weight=mx.nd.ones((4, 4, 1, 1)), bias=mx.nd.zeros((4,)))
    with pytest.raises(mx.base.MXNetError, match=r"'rois' row 1 .*batch index"):
        getattr(dnd, op)(data=data, rois=rois, **kwargs).asnumpy()


@pytest.mark.parametrize('deformable', [False, True])
def test_roi_batch_index_is_truncated_as_builtin(deformable):
    """A batch index off an integer (MXNet's numeric gradient check nudges the RoIs by
    +-1/1024) names the image its truncation toward zero names, as in the built-ins:
    outputs and gradients equal the built-in's."""
    import mxnet as mx
    from dcn.ops import nd as dnd
    rng = np.random.RandomState(5)
    N, group, out_dim, H, W = 3, 2, 2, 6, 7
    data = rng.standard_normal((N, out_dim * group * group, H, W))
    index = [0.5, -0.5, -1 / 1024, 1 - 1 / 1024, 1 + 1 / 1024, 2.999, 2]
    rois = np.array([[b, 3, 5, 40, 30] for b in index])
    common = dict(spatial_scale=0.125, output_dim=out_dim, pooled_size=group, group_size=group)
    arrays = [data, rois]
    if deformable:
        arrays.append(rng.standard_normal((len(index), 2, group, group)))
        common.update(part_size=group, sample_per_part=2, trans_std=0.1)
    results = []
    for fn in (dnd.DeformablePSROIPooling if deformable else dnd.PSROIPooling,
               mx.nd.contrib.DeformablePSROIPooling if deformable else mx.nd.contrib.PSROIPooling):
        xs = [mx.nd.array(a) for a in arrays]
        for x in xs:
            x.attach_grad()
        with mx.autograd.record():
            y = fn(*xs, **common)
        y.backward(mx.nd.ones_like(y))
        results.append([y.asnumpy(), xs[0].grad.asnumpy()] +
                       ([xs[2].grad.asnumpy()] if deformable else []))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # the rows name images 0, 0, 0, 0, 1, 2, 2: every image's gradient is used
    assert all(np.abs(results[0][1][n]).sum() > 0 for n in range(N))


if __name__ == '__main__' and len(sys.argv) == 5 and sys.argv[1] == '--worker':
    _worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
