#!/usr/bin/env python
"""Benchmark of the dcn.ops CPU operators against MXNet's built-in operators.

Shapes: the res5 layer of Deformable R-FCN (1x512x38x63 -> 512, 3x3, dilate 2, pad 2,
4 deformable groups) and its position-sensitive pooling (300 RoIs, 81 classes, 7x7 bins,
4x4 samples per bin); the fused offset branch of Deformable R-FCN (1x1 convolution
1024 -> 7938 channels feeding a no_trans pooling, as Conv1x1DeformablePSROIPooling).  Every
row is measured in one process (ours and the baseline interleaved): best of N each, and the
median of the ratios of each round's two times (benchmarks/_timing.py).  Each (ISA, thread
count) runs in its own subprocess with OMP_NUM_THREADS set (and DCN_CPU_ISA, see
benchmarks/_isa.py).

    PYTHONPATH=lib python benchmarks/bench_ops.py [--threads 1 2] [--repeat 5] [--quick]
        [--isa auto avx512 avx2 generic] [--baseline-isa match|native] [--only NAME...]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _isa  # noqa: E402
import _timing  # noqa: E402


CLOCK = {'wall': time.perf_counter, 'cpu': time.process_time}
_clock = CLOCK['wall']


def _best(fn, repeat, warmup=1):
    import mxnet as mx
    for _ in range(warmup):
        fn()
        mx.nd.waitall()
    best = float('inf')
    for _ in range(repeat):
        t = _clock()
        fn()
        mx.nd.waitall()
        best = min(best, _clock() - t)
    return best


def _fwd_bwd(op, inputs, grad_idx):
    import mxnet as mx

    def run():
        for i in grad_idx:
            inputs[i].attach_grad()
        with mx.autograd.record():
            y = op(*inputs)
        y.backward(mx.nd.ones_like(y))
    return run


def worker(args):
    global _clock
    _clock = CLOCK[args.clock]
    import numpy as np
    import mxnet as mx
    sys.path.insert(0, os.path.join(ROOT, 'lib'))
    import dcn.ops
    from dcn.ops import nd as dnd

    rng = np.random.default_rng(0)
    H, W = (19, 32) if args.quick else (38, 63)
    C, F, dg = (256, 256, 4) if args.quick else (512, 512, 4)
    R = 100 if args.quick else 300
    data = mx.nd.array(rng.standard_normal((1, C, H, W)), dtype=np.float32)
    offset = mx.nd.array(rng.standard_normal((1, 2 * 9 * dg, H, W)) * 2, dtype=np.float32)
    mask = mx.nd.array(rng.uniform(0, 1, (1, 9 * dg, H, W)), dtype=np.float32)
    weight = mx.nd.array(rng.standard_normal((F, C, 3, 3)) * 0.01, dtype=np.float32)
    conv = dict(kernel=(3, 3), dilate=(2, 2), pad=(2, 2), num_filter=F, no_bias=True)
    dconv = dict(conv, num_deformable_group=dg)
    rows = []

    def row(name, ours, base, base_name, goal):
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            return
        # interleaved, so that both see the same machine load; every round kept
        r_o, r_b = [], []
        for i in range(args.repeat):
            r_o.append(_best(ours, 1, warmup=0 if i else 1))
            r_b.append(_best(base, 1, warmup=0 if i else 1))
        rows.append(dict(name=name, rounds_ours=r_o, rounds_base=r_b, base_name=base_name,
                         goal=goal))

    row('DeformableConvolution fwd',
        lambda: dnd.DeformableConvolution(data, offset, weight, **dconv),
        lambda: mx.nd.contrib.DeformableConvolution(data, offset, weight, **dconv), 'built-in',
        0.35)
    row('DeformableConvolution fwd',
        lambda: dnd.DeformableConvolution(data, offset, weight, **dconv),
        lambda: mx.nd.Convolution(data, weight, **conv), 'Convolution (dilated)', 1.15)
    row('ModulatedDeformableConvolution fwd',
        lambda: dnd.ModulatedDeformableConvolution(data, offset, mask, weight, **dconv),
        lambda: mx.nd.Convolution(data, weight, **conv), 'Convolution (dilated)', 1.2)
    row('DeformableConvolution fwd+bwd',
        _fwd_bwd(lambda *x: dnd.DeformableConvolution(*x, **dconv), [data, offset, weight],
                 [0, 1, 2]),
        _fwd_bwd(lambda *x: mx.nd.contrib.DeformableConvolution(*x, **dconv),
                 [data, offset, weight], [0, 1, 2]), 'built-in', 0.25)
    row('ModulatedDeformableConvolution fwd',
        lambda: dnd.ModulatedDeformableConvolution(data, offset, mask, weight, **dconv),
        lambda: mx.nd.contrib.ModulatedDeformableConvolution(data, offset, mask, weight,
                                                             **dconv), 'built-in', 0.35)

    ncls, P = 81, 7
    feat = mx.nd.array(rng.standard_normal((1, ncls * P * P, H, W)), dtype=np.float32)
    x1 = rng.uniform(0, W * 16 * 0.8, R)
    y1 = rng.uniform(0, H * 16 * 0.8, R)
    rois = mx.nd.array(np.stack([np.zeros(R), x1, y1, x1 + rng.uniform(16, 400, R),
                                 y1 + rng.uniform(16, 300, R)], 1), dtype=np.float32)
    trans = mx.nd.array(rng.standard_normal((R, 2 * ncls, P, P)) * 0.5, dtype=np.float32)
    pool = dict(spatial_scale=0.0625, output_dim=ncls, group_size=P, pooled_size=P, part_size=P,
                sample_per_part=4, trans_std=0.1)
    row('DeformablePSROIPooling fwd',
        lambda: dnd.DeformablePSROIPooling(feat, rois, trans, **pool),
        lambda: mx.nd.contrib.DeformablePSROIPooling(feat, rois, trans, **pool), 'built-in',
        0.2)
    row('DeformablePSROIPooling fwd+bwd',
        _fwd_bwd(lambda *x: dnd.DeformablePSROIPooling(*x, **pool), [feat, rois, trans], [0, 2]),
        _fwd_bwd(lambda *x: mx.nd.contrib.DeformablePSROIPooling(*x, **pool),
                 [feat, rois, trans], [0, 2]), 'built-in', 0.2)

    # the class offset branch of the Deformable R-FCN test network: rfcn_cls_offset_t (1x1
    # convolution, 2 * 7 * 7 * 81 outputs) and its no_trans pooling, fused by the predictor
    # into Conv1x1DeformablePSROIPooling; baseline: MXNet's convolution and built-in pooling
    C1, D1 = 256 if args.quick else 1024, 2 * ncls
    feat_o = mx.nd.array(rng.standard_normal((1, C1, H, W)), dtype=np.float32)
    w_o = mx.nd.array(rng.standard_normal((D1 * P * P, C1, 1, 1)) * 0.01, dtype=np.float32)
    b_o = mx.nd.array(rng.standard_normal(D1 * P * P) * 0.01, dtype=np.float32)
    pool_o = dict(spatial_scale=0.0625, output_dim=D1, group_size=P, pooled_size=P, part_size=P,
                  sample_per_part=4)
    row('Conv1x1DeformablePSROIPooling fwd',
        lambda: dnd.Conv1x1DeformablePSROIPooling(feat_o, rois, w_o, b_o, **pool_o),
        lambda: mx.nd.contrib.DeformablePSROIPooling(
            mx.nd.Convolution(feat_o, w_o, b_o, kernel=(1, 1), num_filter=D1 * P * P), rois,
            no_trans=True, **pool_o), 'Convolution + built-in', 0.35)

    # deformable Faster R-CNN's RoI pooling (and each level of Deformable FPN's): group 1,
    # one offset class, 256 channels
    feat1 = mx.nd.array(rng.standard_normal((1, 256, H, W)), dtype=np.float32)
    trans1 = mx.nd.array(rng.standard_normal((R, 2, P, P)) * 0.5, dtype=np.float32)
    pool1 = dict(pool, output_dim=256, group_size=1)
    row('DeformablePSROIPooling-g1 fwd',
        lambda: dnd.DeformablePSROIPooling(feat1, rois, trans1, **pool1),
        lambda: mx.nd.contrib.DeformablePSROIPooling(feat1, rois, trans1, **pool1), 'built-in',
        0.2)
    row('DeformablePSROIPooling-g1 fwd+bwd',
        _fwd_bwd(lambda *x: dnd.DeformablePSROIPooling(*x, **pool1), [feat1, rois, trans1],
                 [0, 2]),
        _fwd_bwd(lambda *x: mx.nd.contrib.DeformablePSROIPooling(*x, **pool1),
                 [feat1, rois, trans1], [0, 2]), 'built-in', 0.2)

    L = H * W
    col_bytes = C * 9 * L * 4
    plan_bytes = dg * 9 * L * 4 * (4 + 4)
    print(json.dumps(dict(rows=rows, col_bytes=col_bytes, plan_bytes=plan_bytes,
                          shape=[1, C, H, W], rois=R, info=_isa.worker_description())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--repeat', type=int, default=5, help='best of N (default 5)')
    ap.add_argument('--quick', action='store_true',
                    help='smaller shapes (1x256x19x32, 100 RoIs) and best of 2')
    ap.add_argument('--only', nargs='+', default=None,
                    help='run only rows whose operator name contains one of these strings')
    ap.add_argument('--clock', default='wall', choices=sorted(CLOCK),
                    help='wall (default) or cpu: process CPU time, which a busy machine inflates '
                         'less (one thread only: with several it adds up the threads)')
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    _isa.add_arguments(ap)
    args = ap.parse_args()
    if args.quick:
        args.repeat = min(args.repeat, 2)
    if args.worker:
        worker(args)
        return
    print('CPU: %s' % _isa.cpu_description())
    for isa in args.isa:
        for nt in args.threads:
            run_worker(args, isa, nt)


def run_worker(args, isa, nt):
    env = dict(os.environ, OMP_NUM_THREADS=str(nt), MXNET_ENGINE_TYPE='NaiveEngine')
    env = _isa.worker_env(env, isa, args.baseline_isa)
    env['PYTHONPATH'] = os.path.join(ROOT, 'lib') + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', '--repeat',
           str(args.repeat), '--clock', args.clock] + (['--quick'] if args.quick else []) + \
        (['--only'] + args.only if args.only else [])
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE).stdout
    res = json.loads(out.decode().strip().splitlines()[-1])
    print('\nOMP_NUM_THREADS=%d  data %s, %d RoIs  (best of %d, ms%s)  %s'
          % (nt, 'x'.join(map(str, res['shape'])), res['rois'], args.repeat,
             ', CPU time' if args.clock == 'cpu' else '', _isa.header(res['info'])))
    print('%-36s %9s %9s %7s %7s %5s  %-22s %s' % ('operator', 'ours', 'baseline', 'ratio',
                                                   'goal', 'met', 'baseline',
                                                   'ratio per round (ours / baseline)'))
    for r in res['rows']:
        ours, base = min(r['rounds_ours']), min(r['rounds_base'])
        ratio = ours / base
        print('%-36s %9.2f %9.2f %7.3f %7s %5s  %-22s %s'
              % (r['name'], ours * 1e3, base * 1e3, ratio, '<=%g' % r['goal'],
                 'yes' if ratio <= r['goal'] else 'NO', r['base_name'],
                 _timing.paired_summary(r['rounds_ours'], r['rounds_base'])))
    print('workspace per image: sampling plan %.1f MiB; column buffer %.1f MiB in the '
          'backward pass (and forward on the generic path; the avx2 / avx512 forward samples '
          'GEMM panels from a channels-last copy of the input instead)'
          % (res['plan_bytes'] / 2 ** 20, res['col_bytes'] / 2 ** 20))


if __name__ == '__main__':
    main()
